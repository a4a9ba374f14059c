"""``amqp-redelivery``: crash before ack → redelivery → duplicate, on RabbitMQ and embedded.

A duplicate must be a real redelivery: the broker set ``redelivered`` on it, a crash of
the consumer that held it precedes it, and the broker's own queue count agrees with the
dashboard's at the end.
"""

from __future__ import annotations

import pytest

from flows.models import InboxEntry

from .amqp_support import RUN_TIMEOUT_S, BrokerModeClass, Finished, run_workflow
from .causes import duplicates_name_their_cause
from .polling import wait_for_events

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"rate": 0, "work_ms": 10, "restart_ms": 100, "consumers": 2, "prefetch": 1}


def duplicates_are_real_redeliveries(run: Finished) -> list[dict]:
    crashes = run.of("crash")
    dups = [e for e in run.of("deliver") if e["duplicate"]]
    for d in dups:
        assert d["attempt"] >= 2 and d["attrs"]["redelivered"] is True, d  # the broker's flag
        assert "crashed" in d["attrs"]["reason"] and "before its ack" in d["attrs"]["reason"], d
        crashed_holding = [c for c in crashes if c["seq"] < d["seq"] and d["message_id"] in c["attrs"]["unacked"]]
        assert crashed_holding, f"duplicate {d['message_id']} without a crash of its holder before it"
        requeued = [e for e in run.of("requeue") if e["message_id"] == d["message_id"] and e["seq"] < d["seq"]]
        assert requeued
    # Every requeue the crash caused came back as a duplicate delivery.
    assert len(run.of("requeue")) == len(dups) == run.counts["duplicates"]
    return dups


class RedeliveryContract(BrokerModeClass):
    def test_crash_before_ack_delivers_again(self) -> None:
        run = run_workflow("amqp-redelivery", messages=8, crash_at=2, idempotent=False, **FAST)
        dups = duplicates_are_real_redeliveries(run)
        assert len(dups) >= 1 and run.of("crash")[0]["actor"] == "consumer:work/1"
        r, c = run.result, run.counts
        assert r["lost"] == 0 and c["lost"] == 0
        # Without an inbox the duplicate's effect happens again: effects == processed > messages.
        assert c["effects"] == c["processed"] == 8 + len(dups)
        assert r["side_effects"]["total"] == c["effects"] and r["side_effects"]["repeated"]
        for message_id in r["side_effects"]["repeated"]:
            assert message_id in {d["message_id"] for d in dups}
        assert r["counts_agree"] and r["queue_counts"]["work"]["broker_ready"] == 0
        assert r["queue_counts"]["work"]["acked"] == 8

    def test_the_crash_names_the_messages_it_brings_back(self) -> None:
        run = run_workflow("amqp-redelivery", messages=6, crash_at=2, idempotent=True, **FAST)
        (crash,) = run.of("crash")
        assert crash["attrs"]["message_ids"] == crash["attrs"]["unacked"] and crash["attrs"]["message_ids"]
        assert crash["message_id"] == crash["attrs"]["unacked"][-1]  # as before: the one it was handling
        dups = duplicates_name_their_cause(run.events, ("crash",))
        assert {d["message_id"] for d in dups} == set(crash["attrs"]["message_ids"])
        assert all(e["attrs"]["cause_seq"] == crash["seq"] for e in run.of("requeue"))
        # A first delivery has no cause to name.
        assert not [e for e in run.of("deliver") if not e["duplicate"] and "cause_seq" in e["attrs"]]

    def test_idempotent_consumer_applies_each_message_once(self) -> None:
        run = run_workflow("amqp-redelivery", messages=8, crash_at=2, crash_probability=0.2, idempotent=True, **FAST)
        dups = duplicates_are_real_redeliveries(run)
        assert dups
        c, r = run.counts, run.result
        suppressed = [e for e in run.of("process") if e["attrs"]["effect"] is False]
        assert c["effects"] == c["processed"] - c["duplicates"] == 8 and len(suppressed) == c["duplicates"]
        assert {e["message_id"] for e in suppressed} == {d["message_id"] for d in dups}
        assert all(e["duplicate"] and e["attrs"]["suppressed"] for e in suppressed)
        assert r["side_effects"] == {"total": 8, "distinct": 8, "repeated": {}}
        assert InboxEntry.objects.filter(run_id=run.summary["id"]).count() == 8
        assert r["counts_agree"] and r["lost"] == 0

    def test_crash_button_crashes_a_consumer_on_demand(self) -> None:
        from flows import eventstore, registry
        from flows.runner import get_runner, wait_until_finished

        params, _ = registry.get("amqp-redelivery").validate(
            {**FAST, "messages": 6, "rate": 10, "crash_at": 0, "work_ms": 20})
        runner = get_runner()
        run = runner.start("amqp-redelivery", params)

        def delivered(events: list[dict]) -> bool:
            if any(e["kind"] == "deliver" for e in events):
                return True
            assert runner.is_live(run.pk), "the run ended before the button was pressed"
            return False

        wait_for_events(run.pk, delivered, 20, "a delivery")
        runner.act(run.pk, "crash", "")  # no target: whichever consumer handles a message next
        wait_until_finished(run.pk, RUN_TIMEOUT_S)
        finished = Finished(runner.summary(run.pk), eventstore.read_events(run.pk, after=0, limit=100000))
        assert finished.summary["state"] == "succeeded"
        crashes = finished.of("crash")
        assert len(crashes) == 1 and "button" in crashes[0]["attrs"]["reason"]
        assert len(duplicates_are_real_redeliveries(finished)) == 1
        assert finished.result["lost"] == 0


class TestRedeliveryEmbedded(RedeliveryContract):
    mode = "embedded"


class TestRedeliveryRabbitMQ(RedeliveryContract):
    mode = "external"
    on_stack = ("test_idempotent_consumer_applies_each_message_once",)  # the inbox's unique constraint on PostgreSQL
