"""``mqtt-qos`` on real brokers: Mosquitto (external, as in CI, and embedded as a child process)
and amqtt (the embedded fallback, in-process, when no mosquitto binary is installed).

One contract, two broker implementations. Where amqtt 0.12.1 departs from MQTT 3.1.1 the subclass pins
what it actually does, so a change in either broker (or in our reading of it) fails here:

* it delivers at the *subscription* QoS instead of min(publish QoS, subscription QoS);
* it forgets a QoS 1 message whose PUBACK was lost with the connection (no DUP redelivery);
* it marks messages queued for an offline persistent session with RETAIN=1;
* on every CONNECT it sends the retained messages matching *any* client's filters (at
  QoS 0), so late and reconnecting subscribers get extra (and even unmatched) copies.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from flows import eventstore, registry
from flows.runner import get_runner, wait_until_finished

from .mqtt_support import filter_matches, primed_snapshot, use_embedded_amqtt, use_embedded_mosquitto
from .polling import wait_for_events

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"rate": 0, "retain": False, "disconnect": "", "disconnect_at": 0, "away_messages": 0, "lose_ack": False}


def sub(name: str, topic_filter: str, qos: int, clean_session: bool = True, late: bool = False) -> dict:
    return {"name": name, "filter": topic_filter, "qos": qos, "clean_session": clean_session, "late": late}


def deliveries(events: list[dict], subscriber: str | None = None) -> list[dict]:
    return [e for e in events if e["kind"] == "deliver" and (subscriber is None or e["attrs"]["subscriber"] == subscriber)]


def per_message(events: list[dict], subscriber: str) -> Counter:
    return Counter(e["message_id"] for e in deliveries(events, subscriber))


class MqttQosContract:
    """What every broker must show; subclasses say which broker and pin its departures."""

    flavour = ""
    # amqtt delivers at the subscription QoS, whatever the publisher used.
    delivers_at_subscription_qos = False
    # Mosquitto resends an unacknowledged QoS 1 message with DUP=1 after reconnect.
    redelivers_unacked_qos1 = True
    queued_marked_retained = False

    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode):  # conftest fixture
        raise NotImplementedError

    def run_qos(self, timeout: float = 60, **params):
        cleaned, errors = registry.get("mqtt-qos").validate({**QUIET, **params})
        assert not errors, errors
        run = wait_until_finished(get_runner().start("mqtt-qos", cleaned).pk, timeout)
        assert run.state == "succeeded", run.error
        summary = get_runner().summary(run.pk)
        assert summary["result"]["broker"]["flavour"] == summary["result"]["broker"]["impl"] == self.flavour
        return summary, eventstore.read_events(run.pk, 0, 100_000)

    def test_each_message_reaches_exactly_the_matching_subscribers(self):
        topics = ["home/kitchen/temp", "home/garage/temp", "home/kitchen/light/level", "office/temp", "home"]
        subs = [sub("plus", "home/+/temp", 0), sub("hash", "home/#", 1), sub("deep", "+/+/light/+", 2),
                sub("exact", "office/temp", 1), sub("nobody", "garden/#", 1)]
        summary, events = self.run_qos(messages=10, qos=1, topics=topics, subscribers=subs)

        published = {e["message_id"]: e["attrs"]["topic"] for e in events if e["kind"] == "publish"}
        assert len(published) == 10
        wanted = {(m, s["name"]) for m, topic in published.items() for s in subs if filter_matches(s["filter"], topic)}
        assert wanted, "the plan must route something"
        got = Counter((e["message_id"], e["attrs"]["subscriber"]) for e in deliveries(events))
        assert set(got) == wanted
        assert set(got.values()) == {1}, "no message was delivered twice"
        routed = {(e["message_id"], e["attrs"]["subscriber"]) for e in events if e["kind"] == "route"}
        assert routed == wanted, "the view's routing is the matcher's"
        assert not any(name == "nobody" for _, name in got)

        qos_of = {s["name"]: s["qos"] for s in subs}
        for e in events:
            if e["kind"] == "route":
                assert e["attrs"]["qos"] == min(1, qos_of[e["attrs"]["subscriber"]])
        for e in deliveries(events):
            sub_qos = qos_of[e["attrs"]["subscriber"]]
            assert e["attrs"]["qos"] == (sub_qos if self.delivers_at_subscription_qos else min(1, sub_qos))
        upgraded = [e for e in deliveries(events) if qos_of[e["attrs"]["subscriber"]] > 1]
        assert len(summary["result"]["qos_differences"]) == (len(upgraded) if self.delivers_at_subscription_qos else 0)

        counts = summary["counts"]
        assert counts["delivered"] == counts["processed"] == len(wanted) == summary["expected"]
        assert counts["duplicates"] == counts["lost"] == 0
        assert summary["latency_ms"]["perceived"]["count"] == 10  # one PUBACK per QoS 1 publish

    def test_qos0_loses_what_was_published_while_away(self):
        summary, events = self.run_qos(messages=6, qos=1, topics=["t"],
                                       subscribers=[sub("s0", "t", 0, clean_session=False)],
                                       disconnect="s0", disconnect_at=2, away_messages=3)
        assert per_message(events, "s0") == Counter({"m1": 1, "m2": 1, "m6": 1})
        lost = summary["result"]["lost_pairs"]
        assert [(x["message_id"], x["subscriber"]) for x in lost] == [("m3", "s0"), ("m4", "s0"), ("m5", "s0")]
        assert all("QoS 0" in x["reason"] for x in lost)
        assert summary["counts"]["lost"] == 3 and summary["counts"]["duplicates"] == 0
        assert [e["attrs"]["outcome"] for e in events if e["kind"] == "route"] == ["deliver"] * 2 + ["drop"] * 3 + ["deliver"]
        leaves = [e for e in events if e["kind"] == "revoke"]
        assert len(leaves) == 1 and leaves[0]["actor"] == "subscriber:s0"
        reconnects = [e for e in events if e["kind"] == "assign" and e["attrs"]["action"] == "reconnect"]
        assert [e["attrs"]["session_present"] for e in reconnects] == [True]

    def test_qos1_lost_puback_means_a_duplicate_with_dup(self):
        summary, events = self.run_qos(messages=6, qos=1, topics=["t"], idempotent=True,
                                       subscribers=[sub("s1", "t", 1, clean_session=False)],
                                       disconnect="s1", disconnect_at=3, away_messages=2, lose_ack=True)
        crash = [e for e in events if e["kind"] == "crash"]
        assert [(e["message_id"], e["actor"]) for e in crash] == [("m3", "subscriber:s1")]
        assert "PUBACK was never sent" in crash[0]["attrs"]["reason"]
        got = per_message(events, "s1")
        lost = {x["message_id"] for x in summary["result"]["lost_pairs"]}
        counts = summary["counts"]
        if self.redelivers_unacked_qos1:
            assert set(got) == {f"m{n}" for n in range(1, 7)} and not lost
            assert got["m3"] == 2 and sum(got.values()) == 7
            dup = [e for e in deliveries(events) if e["duplicate"]]
            assert len(dup) == 1 and dup[0]["message_id"] == "m3" and dup[0]["attempt"] == 2
            assert dup[0]["attrs"]["dup"] is True and "DUP=1" in dup[0]["attrs"]["reason"]
            assert counts["duplicates"] == 1
            assert summary["result"]["differences"] == []
        else:
            # amqtt drops whatever was in flight when the connection broke: m3 (handled, never
            # redelivered) and, if the broker had not yet noticed the drop, the next message too.
            assert set(got.values()) == {1} and counts["duplicates"] == 0
            assert {"m1", "m2", "m3", "m6"} <= set(got) and lost <= {"m4", "m5"} and not set(got) & lost
            assert all("never delivered" in x["reason"] for x in summary["result"]["lost_pairs"])
            assert "duplicates: broker 0, MQTT 3.1.1 1" in summary["result"]["differences"]
            assert counts["lost"] == len(lost)
        # The idempotent subscriber applied each message once, whatever the broker resent.
        assert counts["effects"] == counts["processed"] - counts["duplicates"] == 6 - counts["lost"]
        queued = [e for e in deliveries(events) if e["message_id"] in ("m4", "m5")]
        assert all(e["attrs"]["retain"] is self.queued_marked_retained for e in queued)

    def test_a_lost_ack_names_the_message_it_brings_back(self):
        _, events = self.run_qos(messages=4, qos=1, topics=["t"], subscribers=[sub("s1", "t", 1, clean_session=False)],
                                 disconnect="s1", disconnect_at=2, away_messages=1, lose_ack=True)
        (crash,) = [e for e in events if e["kind"] == "crash"]
        assert crash["message_id"] == "m2" and crash["attrs"]["message_ids"] == ["m2"]
        dups = [e for e in deliveries(events) if e["duplicate"]]
        # Every DUP=1 copy names the dropped connection; m1 too when its PUBACK had not left the socket yet.
        assert all(d["attrs"]["cause_seq"] == crash["seq"] for d in dups if d["attrs"]["dup"]), dups
        assert ("m2" in {d["message_id"] for d in dups}) is self.redelivers_unacked_qos1

    def test_qos2_shows_no_duplicates_across_a_lost_pubcomp(self):
        summary, events = self.run_qos(messages=6, qos=2, topics=["t"],
                                       subscribers=[sub("s2", "t", 2, clean_session=False)],
                                       disconnect="s2", disconnect_at=3, away_messages=2, lose_ack=True)
        crash = [e for e in events if e["kind"] == "crash"]
        assert len(crash) == 1 and "PUBCOMP was never sent" in crash[0]["attrs"]["reason"]
        got = per_message(events, "s2")
        assert set(got.values()) == {1} and summary["counts"]["duplicates"] == 0
        lost = {x["message_id"] for x in summary["result"]["lost_pairs"]}
        if self.redelivers_unacked_qos1:
            assert set(got) == {f"m{n}" for n in range(1, 7)} and not lost
        else:
            # As with QoS 1, amqtt may drop the message it was sending when the connection broke.
            assert {"m1", "m2", "m3", "m6"} <= set(got) and lost <= {"m4", "m5"}
        assert {e["attrs"]["qos"] for e in deliveries(events)} == {2}

    def test_retained_messages_reach_a_late_subscriber(self):
        subs = [sub("live", "#", 1), sub("late", "+", 1, late=True)]
        summary, events = self.run_qos(messages=5, qos=1, topics=["a", "b"], retain=True, subscribers=subs)
        assert per_message(events, "live") == Counter({f"m{n}": 1 for n in range(1, 6)})
        assert not any(e["attrs"]["retain"] for e in deliveries(events, "live"))
        late = deliveries(events, "late")
        # The broker keeps the last message of each topic: m5 on a, m4 on b.
        assert {e["message_id"] for e in late} == {"m4", "m5"}
        assert all(e["attrs"]["retain"] for e in late)
        subscribed = next(e["seq"] for e in events if e["kind"] == "assign" and e["actor"] == "subscriber:late"
                          and e["attrs"]["action"] == "subscribe")
        after_subscribe = Counter(e["message_id"] for e in late if e["seq"] > subscribed)
        assert after_subscribe == Counter({"m4": 1, "m5": 1})
        early = [e for e in late if e["seq"] < subscribed]
        if self.flavour == "mosquitto":
            assert early == [] and summary["counts"]["duplicates"] == 0
        else:
            # amqtt: copies sent on CONNECT for the other client's "#" filter, before SUBSCRIBE, at QoS 0.
            assert {e["message_id"] for e in early} == {"m4", "m5"} and {e["attrs"]["qos"] for e in early} == {0}
        self.assert_no_retained_left(summary["result"]["prefix"])

    def assert_no_retained_left(self, prefix: str) -> None:
        """The run cleared its retained messages: a new subscriber to the run's topics gets nothing."""
        from flows.mqtt.clients import Connection
        from flows.transports import get_broker

        broker = get_broker("mqtt")
        got: list[str] = []
        arrived = threading.Event()
        conn = Connection(f"check-{prefix[-6:]}", broker.host, broker.port, clean_session=True)

        def on_message(client, userdata, msg):
            if msg.topic.startswith(prefix):
                got.append(msg.topic)
                arrived.set()

        conn.client.on_message = on_message
        conn.connect()
        try:
            conn.subscribe(f"{prefix}/#", 1)
            # Retained copies follow SUBACK at once; half a second is ample on loopback.
            arrived.wait(0.5)
        finally:
            conn.close()
        assert got == []

    def test_disconnect_and_reconnect_buttons_deliver_the_queue(self):
        cleaned, errors = registry.get("mqtt-qos").validate(
            {**QUIET, "messages": 30, "rate": 30, "qos": 1, "topics": ["t"],
             "subscribers": [sub("s1", "t", 1, clean_session=False)]})
        assert not errors
        runner = get_runner()
        run = runner.start("mqtt-qos", cleaned)

        def wait_for(predicate, what):
            return wait_for_events(run.pk, predicate, 20, what)

        wait_for(lambda ev: len(deliveries(ev, "s1")) >= 3, "three deliveries")
        runner.act(run.pk, "disconnect", "subscriber:s1")
        left = wait_for(lambda ev: any(e["kind"] == "revoke" for e in ev), "the subscriber to leave")
        published_then = sum(1 for e in left if e["kind"] == "publish")
        wait_for(lambda ev: sum(1 for e in ev if e["kind"] == "publish") >= published_then + 4, "publishes while away")
        runner.act(run.pk, "reconnect", "subscriber:s1")
        finished = wait_until_finished(run.pk, 60)
        assert finished.state == "succeeded", finished.error
        events = eventstore.read_events(run.pk, 0, 100_000)
        summary = runner.summary(run.pk)

        assert per_message(events, "s1") == Counter({f"m{n}": 1 for n in range(1, 31)})
        queued = [e["message_id"] for e in events if e["kind"] == "route" and e["attrs"]["outcome"] == "queue"]
        assert len(queued) >= 4
        reconnect = next(e for e in events if e["kind"] == "assign" and e["attrs"]["action"] == "reconnect")
        assert reconnect["attrs"]["session_present"] is True
        # The queued messages arrive after the reconnect, not before.
        assert all(e["seq"] > reconnect["seq"] for e in deliveries(events, "s1") if e["message_id"] in queued)
        assert summary["counts"]["lost"] == 0 and summary["result"]["manual_actions"] == 2

    def test_the_default_lesson(self):
        defaults = registry.get("mqtt-qos").validate({})[0]
        summary, events = self.run_qos(**{**defaults, "rate": 0})
        result = summary["result"]
        if self.flavour == "mosquitto":
            # Mosquitto does what MQTT 3.1.1 says, to the message.
            assert result["differences"] == []
            spec = result["spec"]
            for name, numbers in spec["lost"].items():
                assert sorted(x["n"] for x in result["lost_pairs"] if x["subscriber"] == name) == numbers
            assert [(d["message_id"], d["subscriber"], d["dup"]) for d in result["duplicates"]] == \
                [(f"m{n}", name, True) for name, ns in spec["duplicates"].items() for n in ns]
            assert summary["progress"]["done"] == summary["expected"]
        else:
            assert result["differences"], "amqtt departs from MQTT 3.1.1 in the default lesson"
        # Whatever the broker, the counters are the event log's.
        counts = summary["counts"]
        assert counts["delivered"] == len(deliveries(events))
        assert counts["duplicates"] == sum(1 for e in deliveries(events) if e["duplicate"])
        assert counts["lost"] == len(result["lost_pairs"])

    def test_counts_agree_with_the_brokers_sys_topics(self):
        """The broker's own PUBLISH counters moved by exactly our publishes and deliveries.

        The counters are broker-wide: another client publishing in the same window (a
        colleague's dev server on a shared Mosquitto) shows up too, so a window that saw
        foreign traffic is measured again, up to three times. In CI the broker is ours alone.
        """
        from flows.mqtt.sys_counters import SysCounters
        from flows.transports import get_broker

        broker = get_broker("mqtt")
        broker.start()
        windows = []
        with SysCounters(broker.host, broker.port, broker.flavour, f"sys-{time.monotonic_ns() % 10**9}") as sys_counters:
            for _ in range(3):
                before = primed_snapshot(sys_counters, broker)
                summary, _ = self.run_qos(messages=5, qos=1, topics=["t"], subscribers=[sub("a", "t", 1), sub("b", "#", 1)])
                after = sys_counters.snapshot()
                counts = summary["counts"]
                assert counts["published"] == 5 and counts["delivered"] == 10
                received = after.received - before.received
                # PUBLISH packets the broker sent = our deliveries + the $SYS messages it sent the watcher.
                sent = (after.sent - before.sent) - (after.sys_messages - before.sys_messages)
                windows.append({"received": received, "sent": sent})
                if received == counts["published"] and sent == counts["delivered"]:
                    return
        pytest.fail(f"the broker counted other traffic in every window, or counts disagree: {windows} "
                    f"(expected received 5, sent 10)")

class TestMosquitto(MqttQosContract):
    flavour = "mosquitto"

    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode, mosquitto_url):
        broker_mode("mqtt", "external", mosquitto_url)


    def test_a_sampled_run_counts_plain_messages_and_records_every_anomaly(self):
        """The hot path tallies untraced messages without building their events; duplicates, the crash
        and whatever was not planned are still recorded one by one, and the counts stay exact."""
        summary, events = self.run_qos(messages=300, qos=1, topics=["t"], fidelity="sampled",
                                       subscribers=[sub("s1", "t", 1, clean_session=False)],
                                       disconnect="s1", disconnect_at=150, away_messages=20, lose_ack=True)
        counts, result = summary["counts"], summary["result"]
        assert summary["fidelity"]["mode"] == "sampled" and summary["fidelity"]["counted"] > 0
        assert counts["published"] == 300
        # m150 comes again (its PUBACK was lost); unpaced, the next message may have been in flight
        # to the crashed subscriber too and comes again as well: a real duplicate, recorded as one.
        duplicates = counts["duplicates"]
        assert 1 <= duplicates <= 2 and duplicates == len(result["duplicates"]) and not result["lost"]
        assert counts["delivered"] == result["deliveries"] == counts["processed"] == 300 + duplicates
        assert summary["progress"] == {"done": 300, "expected": 300}
        assert summary["kinds"]["ack"] == 300  # every PUBACK, recorded or counted
        dup = [e for e in deliveries(events) if e["duplicate"]]
        assert len(dup) == duplicates and all(e["attrs"]["dup"] for e in dup)
        assert dup[0]["message_id"] == "m150" and {e["message_id"] for e in dup} <= {"m150", "m151"}
        assert [e["message_id"] for e in events if e["kind"] == "crash"] == ["m150"]
        traced = {e["message_id"] for e in events if e["kind"] == "publish"}
        assert len(traced) < 30  # about one in FLOWS_SAMPLE_EVERY
        # A traced message is recorded whole; an untraced one only where something happened to it.
        for e in deliveries(events):
            assert e["message_id"] in traced or e["duplicate"]

    def test_a_sampled_run_decides_each_message_once(self, monkeypatch):
        """Publish, PUBACK and every delivery read the decision taken at publish (a per-message hot path)."""
        import zlib

        from flows.fidelity import Fidelity

        asked = Counter()
        real_traces = Fidelity.traces
        monkeypatch.setattr(Fidelity, "traces", lambda self, message_id: asked.update([message_id]) or
                            real_traces(self, message_id))
        summary, _ = self.run_qos(messages=200, qos=1, topics=["t"], fidelity="sampled",
                                  subscribers=[sub("a", "t", 1), sub("b", "#", 1)])
        assert summary["counts"]["delivered"] == 400 and summary["fidelity"]["mode"] == "sampled"
        # The recorder asks again about the events of messages in the sample; the others: once, at publish.
        outside = [f"m{n}" for n in range(1, 201) if zlib.crc32(f"m{n}".encode()) % 100]
        assert {asked[m] for m in outside} == {1}

    def test_pace_counts_the_events_each_message_makes(self):
        workflow = registry.get("mqtt-qos")()
        params, _ = registry.get("mqtt-qos").validate(
            {**QUIET, "messages": 1000, "qos": 1, "topics": ["a", "b"],
             "subscribers": [sub("x", "a", 1), sub("y", "#", 1), sub("z", "#", 1, late=True)]})
        # publish + PUBACK, and a route, deliver and process per matching subscriber (late ones join after)
        assert workflow.pace(params) == (1000 * 2 + 3 * 1500, float("inf"))
        assert workflow.pace({**params, "rate": 10})[1] == 10 * (2 + 3 * 1.5)
        assert workflow.pace({**params, "messages": 0}) == (0, 0.0)


class TestEmbeddedMosquitto(MqttQosContract):
    """The default embedded broker wherever mosquitto is installed: the lesson is MQTT 3.1.1's."""

    flavour = "mosquitto"

    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode, monkeypatch):
        use_embedded_mosquitto(broker_mode, monkeypatch)


class TestEmbeddedAmqtt(MqttQosContract):
    flavour = "amqtt"
    delivers_at_subscription_qos = True
    redelivers_unacked_qos1 = False
    queued_marked_retained = True

    @pytest.fixture(autouse=True)
    def _broker(self, broker_mode, monkeypatch):
        use_embedded_amqtt(broker_mode, monkeypatch)
