"""``amqp-routing`` driven by hand through the API, on RabbitMQ and the embedded broker.

Every hand-published key must reach exactly the queues an independent topic matcher (a
table over words, written here, not the workflow's rules) predicts from the bindings as
they were at that moment; binds and unbinds happen between publishes. A slowed consumer's
queue grows by the broker's own count; a crashed one's unacked message is delivered again
to the other consumer, flagged. Bad requests are 400s naming the field.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from .amqp_support import BrokerModeClass
from .interactive_support import HandsOn, interactive_run

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30.0


def topic_match(pattern: str, key: str) -> bool:
    """AMQP topic matching as a table: reach[i][j] = the first i pattern words match the first j key words."""
    p, w = (pattern.split(".") if pattern else []), (key.split(".") if key else [])
    reach = [[False] * (len(w) + 1) for _ in range(len(p) + 1)]
    reach[0][0] = True
    for i, word in enumerate(p, 1):
        for j in range(len(w) + 1):
            if word == "#":
                reach[i][j] = reach[i - 1][j] or (j > 0 and reach[i][j - 1])
            else:
                reach[i][j] = j > 0 and reach[i - 1][j - 1] and word in ("*", w[j - 1])
    return reach[len(p)][len(w)]


def predicted(bindings: list[tuple[str, str]], key: str) -> set[str]:
    return {queue for queue, pattern in bindings if topic_match(pattern, key)}


def delivered_to(events: list[dict], message_id: str) -> set[str]:
    return {e["attrs"]["queue"] for e in events if e["kind"] == "deliver" and e["message_id"] == message_id}


def unroutable(events: list[dict], message_id: str) -> bool:
    return any(e["kind"] == "route" and e["message_id"] == message_id and e["attrs"].get("unroutable")
               for e in events)


def broker_depth(run: HandsOn, queue: str) -> int:
    """The queue's ready count as the broker reports it (a passive queue.declare)."""
    from flows.models import Run
    from flows.transports import get_broker

    conn = get_broker("amqp").connection()
    try:
        name = f"{Run.objects.get(pk=run.run_id).namespace}.{queue}"
        return conn.channel().queue_declare(queue=name, passive=True).message_count
    finally:
        conn.release()


def test_topic_match_itself() -> None:
    assert topic_match("order.#", "order") and topic_match("#", "") and topic_match("a.#.b", "a.x.y.b")
    assert not topic_match("*", "") and not topic_match("order.*", "order.a.b") and topic_match("*.*.paid", "o.e.paid")


class InteractiveContract(BrokerModeClass):
    BINDINGS = [("billing", "order.*"), ("shipping", "order.paid.#"), ("audit", "audit.#")]

    @contextmanager
    def start(self, **params):
        """The run, once its consumers are subscribed (the actions' targets)."""
        given = {"bindings": [{"queue": q, "key": k} for q, k in self.BINDINGS], **params}
        with interactive_run("amqp-routing", messages=0, exchange_type="topic", work_ms=0, **given) as run:
            consumers = 1 + 1 + 1 + sum(n - 1 for n in params.get("consumers_by_queue", {}).values())
            run.events(lambda evs: sum(e["kind"] == "assign" for e in evs) == consumers, WAIT_S, "consumers to subscribe")
            yield run

    def test_each_key_reaches_the_queues_the_bindings_had_then(self) -> None:
        bindings = list(self.BINDINGS)
        steps = [("publish", "order.created"), ("publish", "order.paid.eu"), ("publish", "invoice.sent"),
                 ("bind", ("billing", "*.*.paid")), ("publish", "order.eu.paid"), ("publish", "order.paid.eu"),
                 ("unbind", ("shipping", "order.paid.#")), ("publish", "order.paid.eu"), ("publish", "order.paid"),
                 ("bind", ("audit", "#")), ("publish", "invoice.sent"), ("unbind", ("billing", "order.*")),
                 ("publish", "order.paid")]
        expected: dict[str, set[str]] = {}
        with self.start() as run:
            menu = run.menu()
            assert set(menu) >= {"publish", "bind", "unbind", "add_consumer", "slow", "crash", "finish"}
            # This run's own queues to choose from; a topic run's publish takes no headers.
            assert menu["bind"]["params"]["queue"]["choices"] == ["billing", "shipping", "audit"]
            assert set(menu["publish"]["params"]) == {"routing_key", "body"}
            for what, arg in steps:
                if what == "publish":
                    answer = run.do("publish", routing_key=arg)
                    expected[answer["message_id"]] = predicted(bindings, arg)
                    if expected[answer["message_id"]]:
                        assert "routed to" in answer["result"], answer
                    else:
                        assert "unroutable" in answer["result"], answer
                else:
                    queue, key = arg
                    run.do(what, queue=queue, binding_key=key)
                    bindings = [*bindings, arg] if what == "bind" else [b for b in bindings if b != arg]
            assert sorted(expected) == [f"m{n}" for n in range(1, 10)]
            run.events(lambda evs: all(delivered_to(evs, m) == q if q else unroutable(evs, m)
                                       for m, q in expected.items()), WAIT_S, "every publish to arrive")
            summary = run.finish()
        events = run.events(lambda evs: True, 5, "the stored events")
        for message_id, queues in expected.items():
            assert delivered_to(events, message_id) == queues, message_id  # exactly: no extra copy either
            assert unroutable(events, message_id) == (not queues), message_id
            routed = {e["attrs"]["queue"] for e in events if e["kind"] == "route" and e["message_id"] == message_id
                      and not e["attrs"].get("unroutable")}
            assert routed == queues, message_id
        hand = [e for e in events if e["kind"] in ("assign", "revoke") and e["actor"].startswith("queue:")]
        assert [(e["kind"], e["attrs"]["queue"], e["attrs"]["key"]) for e in hand] == [
            ("assign", "billing", "*.*.paid"), ("revoke", "shipping", "order.paid.#"), ("assign", "audit", "#"),
            ("revoke", "billing", "order.*")]
        assert all(e["attrs"]["by_hand"] for e in hand)
        result = summary["result"]
        assert summary["state"] == "succeeded", summary["error"]
        assert result["interactive"]["ended_by"].startswith("finish")
        assert result["published_by_hand"] == 9 and result["unroutable"] == 2
        assert result["counts_agree"] and result["disagreements"] == []
        assert {(b["queue"], b["key"]) for b in result["bindings_at_end"]} == set(bindings)

    def test_a_slow_consumer_lets_its_queue_grow(self) -> None:
        with self.start(prefetch=1) as run:
            run.do("slow", "consumer:billing/1", delay_ms=3000)
            for _ in range(5):
                run.do("publish", routing_key="order.created")
            # One message in the consumer's hands, the rest ready: the broker's own count.
            depth = run.events(lambda evs: broker_depth(run, "billing") >= 3, WAIT_S, "billing to back up")
            assert depth
            run.do("slow", "consumer:billing/1", delay_ms=0)
            summary = run.finish()
        assert summary["result"]["queue_counts"]["billing"]["acked"] == 5
        assert summary["result"]["counts_agree"]

    def test_a_crashed_consumer_s_unacked_message_goes_to_the_other(self) -> None:
        with self.start(prefetch=1, consumers_by_queue={"billing": 2}) as run:
            run.do("slow", "consumer:billing/1", delay_ms=5000)
            held = ""
            for _ in range(10):  # until the slow one holds a message (billing/2 may take the first ones)
                run.do("publish", routing_key="order.created")
                try:
                    events = run.events(lambda evs: any(e["kind"] == "deliver" and e["actor"] == "consumer:billing/1"
                                                        for e in evs), 2.0, "billing/1 to take a message")
                except AssertionError:
                    continue
                held = next(e["message_id"] for e in events
                            if e["kind"] == "deliver" and e["actor"] == "consumer:billing/1")
                break
            assert held, "consumer:billing/1 never got a message"
            answer = run.do("crash", "consumer:billing/1")
            assert "crashed" in answer["result"] and held in answer["result"], answer
            assert "consumer:billing/1" in [t for t in run.menu()["restart"]["targets"]]
            events = run.events(lambda evs: any(e["kind"] == "deliver" and e["message_id"] == held
                                                and e["actor"] == "consumer:billing/2" for e in evs),
                                WAIT_S, f"{held} to be delivered again to billing/2")
            again = next(e for e in events if e["kind"] == "deliver" and e["message_id"] == held
                         and e["actor"] == "consumer:billing/2")
            assert again["attrs"]["redelivered"] is True and again["duplicate"] is True
            assert "crashed" in again["attrs"]["reason"]
            crash = next(e for e in events if e["kind"] == "crash")
            assert crash["attrs"]["unacked"] == [held] and crash["seq"] < again["seq"]
            run.do("restart", "consumer:billing/1")
            assert "consumer:billing/1" in run.menu()["crash"]["targets"]
            summary = run.finish()
        assert summary["result"]["counts_agree"], summary["result"]["queue_counts"]
        assert summary["result"]["queue_counts"]["billing"]["duplicates"] == 1


class TestInteractiveEmbedded(InteractiveContract):
    mode = "embedded"

    def test_bad_requests_name_the_field(self) -> None:
        with self.start() as run:
            cases = [
                (("add_consumer",), {"queue": "nope"}, "queue"),
                (("publish",), {"routing_key": "k" * 256}, "routing_key"),
                (("publish",), {"routing_key": "order.*"}, "routing_key"),
                (("bind",), {"binding_key": "order.#"}, "queue"),
                (("bind",), {"queue": "billing", "binding_key": "order.*"}, "binding_key"),
                (("unbind",), {"queue": "billing", "binding_key": "nothing.bound"}, "binding_key"),
                (("slow", "consumer:billing/1"), {"delay_ms": 6000}, "delay_ms"),
                (("crash", "consumer:nobody/9"), {}, "target"),
                (("subscribe",), {}, "action"),
                (("publish",), {"routing_key": "a", "qos": 1}, "qos"),
            ]
            for args, params, field in cases:
                response = run.act(*args, **params)
                assert response.status_code == 400, (args, params, response.json())
                assert field in response.json()["errors"], (args, params, response.json())
            assert run.do("add_consumer", queue="billing")["result"] == "consumer:billing/2 consumes billing"
            assert run.do("remove_consumer", queue="billing")["result"].startswith("consumer:billing/2 stopped")

    def test_hands_on_actions_need_an_interactive_run(self) -> None:
        with interactive_run("amqp-routing", interactive=False, messages=200, rate=2.0) as run:
            response = run.act("publish", routing_key="order.created.eu")
            assert response.status_code == 400 and "interactive" in response.json()["errors"]["action"]
            assert "publish" not in run.menu()

    def test_a_burst_of_actions_is_rate_limited(self, settings) -> None:
        settings.FLOWS_ACTIONS_PER_S = 10
        with self.start() as run:
            answers = [run.act("publish", routing_key="k" * 300) for _ in range(30)]
            statuses = [a.status_code for a in answers]
            assert statuses.count(429) >= 10 and set(statuses) == {400, 429}, statuses
            limited = next(a.json() for a in answers if a.status_code == 429)
            assert limited["errors"]["action"].startswith("too many actions"), limited
            # Whoever flooded the run can still stop it.
            assert run.act("cancel").status_code == 202

    def test_an_idle_run_ends_by_itself(self, settings) -> None:
        from flows.runner import get_runner

        from .polling import poll

        settings.FLOWS_IDLE_S = 1.0
        with self.start() as run:
            poll(lambda: get_runner().wait(run.run_id, 0.2), WAIT_S, "the idle run to end")
            summary = run.client.get(f"/api/runs/{run.run_id}/").json()
        assert summary["state"] == "succeeded"
        assert summary["result"]["interactive"]["ended_by"].startswith("idle")


class TestInteractiveRabbitMQ(InteractiveContract):
    mode = "external"

    def test_headers_bindings_by_hand(self) -> None:
        with interactive_run("amqp-routing", messages=0, exchange_type="headers", work_ms=0) as run:
            run.events(lambda evs: sum(e["kind"] == "assign" for e in evs) == 3, WAIT_S, "consumers to subscribe")
            assert "routing_key" not in run.menu()["publish"]["params"]
            run.do("bind", queue="audit", arguments={"x-match": "all", "type": "refund"})
            first = run.do("publish", headers={"type": "refund"})
            run.do("unbind", queue="audit", arguments={"x-match": "all", "type": "refund"})
            second = run.do("publish", headers={"type": "refund"})
            assert "routed to audit" in first["result"] and "unroutable" in second["result"]
            run.events(lambda evs: delivered_to(evs, first["message_id"]) == {"audit"}, WAIT_S, "the refund to arrive")
            summary = run.finish()
        assert summary["result"]["counts_agree"] and summary["result"]["disagreements"] == []
