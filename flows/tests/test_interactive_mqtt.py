"""An interactive ``mqtt-qos`` run driven through the API, on the real brokers.

Subscribing and unsubscribing between hand publishes changes who receives each message,
exactly as a topic-filter matcher written here (``filter_matches``, independent of
flows.mqtt.topic_match) predicts from the subscriptions *as they were at that moment*.
Bad action params are a 400 naming the field, and hands-on actions belong to interactive
runs only. One contract class, subclassed per broker mode, as in test_mqtt_qos.py.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from flows import eventstore
from flows.runner import get_runner

from .interactive_support import interactive_run
from .mqtt_support import filter_matches, primed_snapshot, use_embedded_amqtt, use_embedded_mosquitto

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"messages": 0, "retain": False, "disconnect": "", "disconnect_at": 0, "away_messages": 0,
         "lose_ack": False, "topics": ["a/b"]}
S1 = {"name": "s1", "filter": "a/+", "qos": 1, "clean_session": True, "late": False}


def receivers(events: list[dict]) -> dict[str, set[str]]:
    got: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e["kind"] == "deliver":
            got[e["message_id"]].add(e["attrs"]["subscriber"])
    return got


def subscribed(run, count: int) -> None:
    """Until ``count`` subscribers hold their subscriptions (the run is past its setup)."""
    run.events(lambda ev: sum(1 for e in ev if e["kind"] == "assign" and e["attrs"]["action"] == "subscribe") >= count,
               20, f"{count} subscribers")


class InteractiveMqttContract:
    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode):  # conftest fixture
        raise NotImplementedError

    def test_subscribe_and_unsubscribe_change_who_receives(self):
        held: dict[str, set[str]] = {"s1": {"a/+"}}  # the test's own model of the subscriptions
        predicted: dict[str, set[str]] = {}
        steps = [
            ("publish", "a/b"),
            ("subscribe", "s2", "a/#"),  # a new subscriber, by name
            ("publish", "a/b/c"),
            ("publish", "a/b"),
            ("unsubscribe", "s1", "a/+"),
            ("subscribe", "s1", "+/c/#"),
            ("publish", "a/b"),
            ("publish", "x/c"),
            ("unsubscribe", "s2", "a/#"),
            ("publish", "a/c/d"),
            ("publish", "q"),
        ]
        with interactive_run("mqtt-qos", **QUIET, subscribers=[S1]) as run:
            subscribed(run, 1)
            for step in steps:
                if step[0] == "publish":
                    reply = run.do("publish", topic=step[1], qos=1)
                    mid = reply["message_id"]
                    wanted = {name for name, filters in held.items() if any(filter_matches(f, step[1]) for f in filters)}
                    predicted[mid] = wanted
                    run.events(lambda ev, mid=mid, wanted=wanted: wanted <= receivers(ev)[mid], 20,
                               f"{mid} to reach {sorted(wanted)}")
                else:
                    verb, name, topic_filter = step
                    run.do(verb, subscriber=name, filter=topic_filter, **({"qos": 1} if verb == "subscribe" else {}))
                    if verb == "subscribe":
                        held.setdefault(name, set()).add(topic_filter)
                    else:
                        held[name].discard(topic_filter)
            summary = run.finish()
        events = eventstore.read_events(run.run_id, 0, 100_000)

        assert len(predicted) == 7 and any(predicted.values()) and not all(predicted.values())
        got = receivers(events)
        assert {mid: got.get(mid, set()) for mid in predicted} == predicted
        routed: dict[str, set[str]] = defaultdict(set)
        for e in events:
            if e["kind"] == "route":
                routed[e["message_id"]].add(e["attrs"]["subscriber"])
        assert {mid: routed.get(mid, set()) for mid in predicted} == predicted, "the view's routes are the broker's"
        hand = [(e["kind"], e["actor"], e["attrs"]["filter"]) for e in events
                if e["kind"] in ("assign", "revoke") and e["attrs"].get("by_hand")]
        assert hand == [("assign", "subscriber:s2", "a/#"), ("revoke", "subscriber:s1", "a/+"),
                        ("assign", "subscriber:s1", "+/c/#"), ("revoke", "subscriber:s2", "a/#")]
        counts = summary["counts"]
        assert counts["published"] == 7
        assert counts["delivered"] == sum(len(v) for v in predicted.values())
        assert counts["duplicates"] == counts["lost"] == 0
        assert summary["result"]["interactive"]["ended_by"].startswith("finish")

    def test_a_subscribe_by_hand_brings_the_retained_copy(self):
        with interactive_run("mqtt-qos", **QUIET, subscribers=[S1]) as run:
            subscribed(run, 1)
            kept = run.do("publish", topic="r/1", qos=1, retain=True)["message_id"]
            run.do("subscribe", subscriber="s1", filter="r/#", qos=1)
            run.events(lambda ev: kept in receivers(ev) and "s1" in receivers(ev)[kept], 20, "the retained copy")
            summary = run.finish()
        events = eventstore.read_events(run.run_id, 0, 100_000)
        copy = next(e for e in events if e["kind"] == "deliver" and e["message_id"] == kept)
        assert copy["attrs"]["retain"] is True and "unexpected" not in copy["attrs"]
        assert summary["counts"]["lost"] == 0

    def test_a_slowed_subscriber_takes_that_long_per_message(self):
        s2 = {**S1, "name": "s2"}
        with interactive_run("mqtt-qos", **QUIET, subscribers=[S1, s2]) as run:
            subscribed(run, 2)
            run.do("slow", target="subscriber:s1", delay_ms=300)
            mid = run.do("publish", topic="a/b", qos=1)["message_id"]
            run.events(lambda ev: sum(1 for e in ev if e["kind"] == "process" and e["message_id"] == mid) == 2, 20,
                       f"{mid} handled by both")
            summary = run.finish()
        events = eventstore.read_events(run.run_id, 0, 100_000)
        at = {(e["kind"], e["attrs"]["subscriber"]): e["t_ms"] for e in events if e["message_id"] == mid
              and e["kind"] in ("deliver", "process")}
        assert at[("process", "s1")] - at[("deliver", "s1")] >= 300  # a lower bound: no machine makes it faster
        assert summary["counts"]["processed"] == 2 and summary["counts"]["lost"] == 0

    def test_bad_params_are_a_400_naming_the_field(self):
        with interactive_run("mqtt-qos", **QUIET, subscribers=[S1]) as run:
            subscribed(run, 1)
            for action, params, field in [
                ("publish", {"topic": "a/b", "qos": 3}, "qos"),
                ("publish", {"topic": "a/+/b", "qos": 1}, "topic"),
                ("publish", {"topic": "a/#", "qos": 0}, "topic"),
                ("subscribe", {"subscriber": "s1", "filter": "a/#/b", "qos": 1}, "filter"),
                ("subscribe", {"subscriber": "s1", "filter": "a/b#", "qos": 1}, "filter"),
                ("subscribe", {"subscriber": "s1", "filter": "a/b+/c", "qos": 1}, "filter"),
                ("subscribe", {"subscriber": "s1", "filter": "a/#", "qos": 3}, "qos"),
                ("unsubscribe", {"subscriber": "nobody", "filter": "a/#"}, "subscriber"),
                ("unsubscribe", {"subscriber": "s1", "filter": "never/held"}, "filter"),
            ]:
                response = run.act(action, **params)
                assert response.status_code == 400, (action, params, response.json())
                assert list(response.json()["errors"]) == [field], (action, params, response.json())
            # The run grows to at most 8 subscribers.
            for n in range(2, 9):
                run.do("subscribe", subscriber=f"s{n}", filter="z", qos=0)
            too_many = run.act("subscribe", subscriber="s9", filter="z", qos=0)
            assert too_many.status_code == 400 and "at most 8" in too_many.json()["errors"]["subscriber"]
            assert "s8" in run.menu()["slow"]["targets"][-1]

    def test_hands_on_actions_need_an_interactive_run(self):
        from django.test import Client

        client = Client()
        response = client.post("/api/runs/", data={"workflow": "mqtt-qos", "params": {
            **QUIET, "messages": 200, "rate": 2, "subscribers": [S1]}}, content_type="application/json")
        assert response.status_code == 201, response.json()
        run_id = response.json()["id"]
        try:
            refused = client.post(f"/api/runs/{run_id}/actions/", content_type="application/json",
                                  data={"action": "publish", "params": {"topic": "a/b", "qos": 1}})
            assert refused.status_code == 400
            assert "interactive" in refused.json()["errors"]["action"]
        finally:
            client.post(f"/api/runs/{run_id}/actions/", data={"action": "cancel"}, content_type="application/json")
            get_runner().wait(run_id, 30.0)


class TestMosquitto(InteractiveMqttContract):
    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode, mosquitto_url):
        broker_mode("mqtt", "external", mosquitto_url)


class TestEmbeddedMosquitto(InteractiveMqttContract):
    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode, monkeypatch):
        use_embedded_mosquitto(broker_mode, monkeypatch)

    def test_hand_publishes_agree_with_the_brokers_sys_counters(self):
        """The embedded broker is this test's alone: its $SYS counters moved by exactly our traffic."""
        from flows.mqtt.sys_counters import SysCounters
        from flows.transports import get_broker

        broker = get_broker("mqtt")
        broker.start()
        with SysCounters(broker.host, broker.port, broker.flavour, f"sys-{time.monotonic_ns() % 10**9}") as sys_counters:
            before = primed_snapshot(sys_counters, broker)
            with interactive_run("mqtt-qos", **QUIET, subscribers=[S1]) as run:
                subscribed(run, 1)
                run.do("subscribe", subscriber="s2", filter="#", qos=1)
                for topic in ("a/b", "a/b/c", "x"):
                    run.do("publish", topic=topic, qos=1)
                summary = run.finish()
            after = sys_counters.snapshot()
        counts = summary["counts"]
        assert counts["published"] == 3 and counts["delivered"] == 4  # a/b to s1 and s2, the others to s2
        assert after.received - before.received == counts["published"]
        sent = (after.sent - before.sent) - (after.sys_messages - before.sys_messages)
        assert sent == counts["delivered"]


class TestEmbeddedAmqtt(InteractiveMqttContract):
    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode, monkeypatch):
        use_embedded_amqtt(broker_mode, monkeypatch)
