"""``amqp-dead-letter`` on RabbitMQ: poison messages retried with a growing backoff, then
dead-lettered by the broker; requeue forever (bounded) and drop (lost) without a DLQ; the
replay from the DLQ; bad params and the embedded broker refused with a 400.

The DLQ's depth is the broker's own (a passive ``queue.declare`` in the run's report, after
the watcher gave back what it held), and ``x-death`` is RabbitMQ's header read back.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from flows.models import Run
from flows.workflows.amqp_dead_letter import LOOP_CAP, poison_ids

from .amqp_support import BrokerModeClass, Finished, run_workflow
from .interactive_support import interactive_run

pytestmark = pytest.mark.django_db(transaction=True)

SLUG = "amqp-dead-letter"
FAST = {"rate": 0, "work_ms": 0, "retry_delay_ms": 20, "consumers": 1}


def of(run: Finished, kind: str, message_id: str) -> list[dict]:
    return [e for e in run.events if e["kind"] == kind and e["message_id"] == message_id]


def post_run(params: dict) -> tuple[int, dict]:
    response = Client().post("/api/runs/", data=json.dumps({"workflow": SLUG, "params": params}),
                             content_type="application/json")
    return response.status_code, response.json()


def good_ones_processed_once(run: Finished, messages: int, poison: set[str]) -> None:
    for n in range(1, messages + 1):
        message_id = f"m{n}"
        if message_id in poison:
            assert not of(run, "process", message_id), message_id
            continue
        assert len(of(run, "deliver", message_id)) == len(of(run, "process", message_id)) == 1, message_id
    assert run.counts["processed"] == run.counts["effects"] == messages - len(poison)
    assert run.summary["progress"] == {"done": messages - len(poison), "expected": messages - len(poison)}


class TestOnRabbitMQ(BrokerModeClass):
    mode = "external"

    @pytest.mark.parametrize(("max_attempts", "consumers"), [(1, 1), (3, 1), (3, 3)])
    def test_every_poison_message_reaches_the_dlq_after_exactly_max_attempts(self, max_attempts, consumers) -> None:
        run = run_workflow(SLUG, messages=8, poison=3, max_attempts=max_attempts, **{**FAST, "consumers": consumers})
        poison = poison_ids(8, 3)
        r, counts = run.result, run.counts
        # The broker's DLQ depth (passive declare) is the dashboard's count of dead-letterings.
        assert counts["dead_lettered"] == 3 == r["dead_lettered"] == r["queue_counts"]["dlq"]["broker_ready"]
        assert r["queue_counts"]["work"]["broker_ready"] == 0 and r["counts_agree"]
        assert counts["lost"] == 0
        for message_id in poison:
            delivered = of(run, "deliver", message_id)
            assert [d["attempt"] for d in delivered] == list(range(1, max_attempts + 1))
            nacks = of(run, "nack", message_id)
            assert len(nacks) == max_attempts and nacks[-1]["attrs"]["dead_letter"] is True
            (dead,) = [e for e in of(run, "route", message_id) if e["attrs"].get("dead_letter")]
            assert dead["actor"] == "exchange:dlx" and dead["seq"] > nacks[-1]["seq"]
            assert dead["attrs"]["reason"] == "rejected" and dead["attrs"]["attempts"] == max_attempts
            # x-death as RabbitMQ stamped it: rejected once from the work queue (the last attempt),
            # and, after retries, expired from the last retry queue on the way back.
            x_death = {(e["queue"], e["reason"]): e["count"] for e in dead["attrs"]["x_death"]}
            assert x_death[("work", "rejected")] == 1
            if max_attempts > 1:
                assert x_death[(f"retry-{max_attempts - 1}", "expired")] == 1
            assert of(run, "enqueue", message_id)[0]["actor"] == "queue:dlq"
        assert {m["message_id"]: m["attempts"] for m in r["dlq"]} == {m: max_attempts for m in poison}
        good_ones_processed_once(run, 8, poison)

    def test_retry_delays_grow_and_the_broker_keeps_them(self) -> None:
        run = run_workflow(SLUG, messages=4, poison=2, max_attempts=4, **FAST)
        assert run.result["retry_delays_ms"] == [20, 40, 80]
        assert run.result["retries"] == len(run.of("retry")) == 2 * 3
        for message_id in poison_ids(4, 2):
            retries = of(run, "retry", message_id)
            assert [e["attrs"]["delay_ms"] for e in retries] == [20, 40, 80]
            assert [e["attempt"] for e in retries] == [2, 3, 4]
            assert [e["actor"] for e in retries] == ["queue:retry-1", "queue:retry-2", "queue:retry-3"]
            back = [e for e in of(run, "route", message_id) if e["attrs"].get("expired")]
            waited = [e["attrs"]["waited_ms"] for e in back]
            # Measured from before the publish to the redelivery: never shorter than the TTL, and growing.
            assert all(w >= d for w, d in zip(waited, [20, 40, 80], strict=True)), waited
            assert waited == sorted(waited) and waited[-1] > waited[0] * 2, waited
            for e, number in zip(back, [1, 2, 3], strict=True):
                assert e["attrs"]["from_queue"] == f"retry-{number}"
                assert {"queue": f"retry-{number}", "reason": "expired"}.items() <= e["attrs"]["x_death"][0].items()
            duplicates = [d for d in of(run, "deliver", message_id) if d["duplicate"]]
            assert len(duplicates) == 3 and all("retry" in d["attrs"]["reason"] for d in duplicates)

    @pytest.mark.parametrize("consumers", [1, 2])
    def test_requeue_forever_is_bounded_by_the_run_and_reported(self, consumers) -> None:
        run = run_workflow(SLUG, messages=6, poison=2, on_failure="requeue", **{**FAST, "consumers": consumers})
        poison = poison_ids(6, 2)
        r = run.result
        assert run.counts["dead_lettered"] == 0 and "dlq" not in r["queue_counts"]
        assert r["looping"] == {m: LOOP_CAP for m in sorted(poison)} and r["loop_cap"] == LOOP_CAP
        for message_id in poison:
            assert len(of(run, "deliver", message_id)) == LOOP_CAP
            assert len(of(run, "requeue", message_id)) == LOOP_CAP - 1
            assert all(d["attrs"]["redelivered"] for d in of(run, "deliver", message_id)[1:])
            (stopped,) = of(run, "error", message_id)
            assert stopped["attrs"]["looping"] is True and "requeue forever" in stopped["attrs"]["reason"]
            assert not of(run, "retry", message_id)
        # Still in the work queue when the run ended: the broker counts them, nothing was lost.
        assert r["queue_counts"]["work"]["broker_ready"] == 2 and r["counts_agree"]
        assert run.counts["lost"] == 0 and run.counts["errors"] == 2
        good_ones_processed_once(run, 6, poison)

    def test_drop_loses_the_poison_messages(self) -> None:
        run = run_workflow(SLUG, messages=6, poison=2, on_failure="drop", max_attempts=2, **FAST)
        poison = poison_ids(6, 2)
        r = run.result
        assert r["dropped"] == sorted(poison, key=lambda m: int(m[1:])) and r["lost"] == 2 == run.counts["lost"]
        assert run.counts["dead_lettered"] == 0 and "dlq" not in r["queue_counts"]
        assert r["queue_counts"]["work"]["broker_ready"] == 0
        for message_id in poison:
            assert len(of(run, "deliver", message_id)) == 2 and len(of(run, "retry", message_id)) == 1
            assert of(run, "nack", message_id)[-1]["attrs"]["dropped"] is True
        good_ones_processed_once(run, 6, poison)

    def test_replay_from_the_dlq_after_the_fix(self) -> None:
        poison = poison_ids(5, 2)
        with interactive_run(SLUG, messages=5, poison=2, max_attempts=2, **FAST) as run:
            run.events(lambda ev: sum(1 for e in ev if e["kind"] == "route" and e["attrs"].get("dead_letter")) == 2,
                       30, "both poison messages in the DLQ")
            answer = run.do("replay")["result"]
            assert "fixed" in answer and all(m in answer for m in poison), answer
            run.events(lambda ev: {e["message_id"] for e in ev if e["kind"] == "process"} >= poison, 30,
                       "the replayed messages processed")
            assert "empty" in run.do("replay")["result"]
            summary = run.finish()
        r = summary["result"]
        assert sorted(r["replayed"]) == sorted(poison) and r["processed"]["poison_after_fix"] == 2
        assert r["queue_counts"]["dlq"]["broker_ready"] == 0 and r["counts_agree"]
        assert summary["counts"]["dead_lettered"] == 2 and summary["counts"]["lost"] == 0
        # The replayed ones are processed too, outside the plan: the progress stays at the good messages.
        assert summary["counts"]["processed"] == 3 + 2 and summary["progress"] == {"done": 3, "expected": 3}

    @pytest.mark.parametrize(("params", "field", "words"), [
        ({"messages": 3, "poison": 4}, "poison", "at most messages (3)"),
        ({"max_attempts": 0}, "max_attempts", "at least 1"),
        ({"on_failure": "retry-forever"}, "on_failure", "dead-letter"),
        ({"max_attempts": 8, "retry_delay_ms": 1000}, "retry_delay_ms", "at most 60 s"),
    ])
    def test_bad_params_are_a_400_naming_the_field(self, params, field, words) -> None:
        status, body = post_run(params)
        assert status == 400 and field in body["errors"] and words in body["errors"][field], body
        assert "broker" not in body["errors"]
        assert not Run.objects.exists()


class TestEmbedded(BrokerModeClass):
    mode = "embedded"

    def test_the_embedded_broker_is_refused_never_faked(self) -> None:
        status, body = post_run({})
        assert status == 400 and "needs RabbitMQ" in body["errors"]["broker"], body
        assert "cannot dead-letter" in body["errors"]["broker"]
        assert not Run.objects.exists()
        contract = {w["slug"]: w for w in Client().get("/api/workflows/").json()}[SLUG]
        assert len(contract["caveats"]) == 1 and "needs RabbitMQ" in contract["caveats"][0]
        assert "needs RabbitMQ" in Client().get(f"/workflows/{SLUG}/").content.decode()
