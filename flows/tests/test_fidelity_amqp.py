"""Fidelity on AMQP: a sampled run's counts equal what the queues got; a crash's redeliveries stay individual."""

from __future__ import annotations

import pytest

from .amqp_support import BrokerModeClass, run_workflow
from .test_amqp_redelivery import FAST, duplicates_are_real_redeliveries

pytestmark = pytest.mark.django_db(transaction=True)


class FidelityContract(BrokerModeClass):
    @pytest.mark.parametrize("messages", [300, 1500])
    def test_sampled_counts_equal_the_queues(self, messages: int) -> None:
        run = run_workflow("amqp-routing", exchange_type="topic", messages=messages, rate=0, work_ms=0, consumers=2,
                           fidelity="sampled")
        r, counts = run.result, run.counts
        assert run.summary["fidelity"]["mode"] == "sampled" and run.summary["fidelity"]["counted"] > 0
        assert counts["published"] == messages and counts["duplicates"] == 0 and counts["lost"] == 0
        acked = sum(q["acked"] for q in r["queue_counts"].values())
        assert counts["delivered"] == counts["processed"] == acked == r["expected_deliveries"] > 0
        assert run.summary["kinds"]["ack"] == acked
        assert r["counts_agree"] and r["disagreements"] == []
        assert len(run.events) < 2 * messages  # most of the 4+ events per message were counted

    def test_a_crash_in_a_sampled_run_shows_every_redelivery(self) -> None:
        run = run_workflow("amqp-redelivery", messages=200, crash_at=40, idempotent=False, fidelity="sampled", **FAST)
        assert run.summary["fidelity"]["counted"] > 0
        dups = duplicates_are_real_redeliveries(run)
        assert dups and run.of("crash")
        c = run.counts
        assert c["effects"] == c["processed"] == 200 + len(dups)
        assert run.result["counts_agree"] and run.result["queue_counts"]["work"]["acked"] == 200


class TestFidelityEmbedded(FidelityContract):
    mode = "embedded"


class TestFidelityRabbitMQ(FidelityContract):
    mode = "external"


class TestAutoSwitch(BrokerModeClass):
    mode = "embedded"

    def test_a_big_fast_run_switches_to_sampled_on_its_rate(self, settings) -> None:
        settings.FLOWS_FIDELITY_MAX_RATE = 200
        settings.FLOWS_FIDELITY_MIN_EVENTS = 300
        run = run_workflow("amqp-routing", exchange_type="topic", messages=5000, rate=0, work_ms=0, consumers=2)
        fidelity = run.summary["fidelity"]
        assert fidelity["mode"] == "sampled" and "events/s" in fidelity["why"], fidelity
        switch = next(e for e in run.of("flow") if e["attrs"].get("why"))
        assert switch["seq"] == fidelity["switched_at_seq"] > 300
        assert switch["attrs"]["mode"] == "sampled"
        counts, r = run.counts, run.result
        acked = sum(q["acked"] for q in r["queue_counts"].values())
        assert counts["published"] == 5000 and counts["delivered"] == counts["processed"] == acked
        assert run.summary["progress"]["done"] == run.summary["progress"]["expected"]

    def test_a_small_slow_run_stays_full(self, settings) -> None:
        settings.FLOWS_FIDELITY_MAX_RATE = 200
        settings.FLOWS_FIDELITY_MIN_EVENTS = 300
        run = run_workflow("amqp-routing", exchange_type="topic", messages=30, rate=30, work_ms=0, consumers=2)
        fidelity = run.summary["fidelity"]
        assert fidelity == {"mode": "full", "why": "auto: the run stayed within what a person can follow",
                            "switched_at_seq": None, "counted": 0}
        assert not run.of("flow")
        assert len(run.of("publish")) == 30
