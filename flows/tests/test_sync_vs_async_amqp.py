"""``sync-vs-async``'s AMQP and Celery lanes, on the embedded broker and on RabbitMQ.

The contract (``SyncVsAsyncContract``) runs the issue's lessons through the real workflow;
the tests here add what only these lanes have: the broker's own queue depth agrees with
the tally, crashes come back as real redeliveries, and the outage leaves the orders in
the queue, not in a consumer.
"""

from __future__ import annotations

from typing import Any

import pytest

from .amqp_support import BrokerModeClass, Finished
from .sync_vs_async_support import QUICK, SyncVsAsyncContract, in_window, lane_events, run_compare

pytestmark = pytest.mark.django_db(transaction=True)

PROTOCOLS = ("amqp", "celery")
BROKER_ACTORS = {"amqp": ("consumer:amqp", "queue:amqp.orders"), "celery": ("worker:celery", "queue:celery.orders")}


def acks(finished: Finished, protocol: str) -> list[dict[str, Any]]:
    return lane_events(finished, protocol, "ack")


class AmqpLanesContract(SyncVsAsyncContract, BrokerModeClass):
    protocols = PROTOCOLS

    def test_the_broker_holds_nothing_at_the_end_and_every_order_was_acked_once(self) -> None:
        finished = run_compare(self.protocols, downstream="up")
        for protocol in self.protocols:
            figures = finished.result["protocols"][protocol]
            broker = figures["broker"]
            # The broker's own count (a passive queue.declare) agrees with the tally: nothing waits.
            assert broker["depth"] == 0 == figures["accepted"] - figures["completed"], broker
            assert broker["queue"].endswith(".orders") and broker["queue"].startswith(f"run{finished.summary['id']}")
            if self.mode == "external":
                assert broker["consumers"] == 1, broker  # the one consumer, still subscribed
            consumer, _queue = BROKER_ACTORS[protocol]
            assert sorted(e["message_id"] for e in acks(finished, protocol)) == sorted(
                e["message_id"] for e in lane_events(finished, protocol, "process"))
            assert {e["actor"] for e in lane_events(finished, protocol, "deliver")} == {consumer}
            # The log reads publish, then deliver, for every order.
            published = {e["message_id"]: e["seq"] for e in lane_events(finished, protocol, "publish")}
            for deliver in lane_events(finished, protocol, "deliver"):
                assert published[deliver["message_id"]] < deliver["seq"], deliver
        amqp = lane_events(finished, "amqp", "publish")
        assert {e["attrs"]["confirmed"] for e in amqp} == {self.mode == "external"}  # kombu memory has no confirms
        assert {e["attrs"]["status"] for e in lane_events(finished, "celery", "publish")} == {202}

    def test_the_outage_leaves_the_orders_in_the_queue_and_the_new_consumer_takes_them(self) -> None:
        finished = run_compare(self.protocols, downstream="down", outage_ms=800)
        window = finished.result["outage"]
        for protocol in self.protocols:
            figures = finished.result["protocols"][protocol]
            _consumer, queue = BROKER_ACTORS[protocol]
            backlog = lane_events(finished, protocol, "backlog")
            assert {e["actor"] for e in backlog} == {queue}
            # Read from the broker while the consumer was gone: the queue filled up...
            assert max(e["attrs"]["depth"] for e in backlog if in_window(e, window)) > 0, backlog
            # ...and nothing was handled meanwhile (the order in hand when it began finished first).
            handled = [e for e in lane_events(finished, protocol, "deliver")
                       if window["start_ms"] + 100 < e["t_ms"] < window["end_ms"]]
            assert handled == []
            # A message the consumer got as it stopped went back unhandled: no duplicate, no redelivery counted.
            assert figures["duplicates"] == 0 and figures["broker"]["depth"] == 0, figures
            assert len(acks(finished, protocol)) == QUICK["orders"]

    def test_a_crashed_handling_is_a_real_redelivery(self) -> None:
        finished = run_compare(self.protocols, downstream="flaky", flaky_rate=0.3)
        for protocol in self.protocols:
            crashes = lane_events(finished, protocol, "crash")
            again = [e for e in lane_events(finished, protocol, "deliver") if e["duplicate"]]
            assert sorted(e["message_id"] for e in again) == sorted(e["message_id"] for e in crashes)
            for deliver in again:
                # The broker says so itself; the reason and the cause come from the crash.
                assert deliver["attrs"]["redelivered"] is True, deliver
                assert deliver["attrs"]["reason"].startswith("the handler crashed after the work, before its ack")
                assert deliver["attrs"]["cause_seq"] in {c["seq"] for c in crashes}
            # Acked once per order: the crashed handling never was.
            assert sorted(e["message_id"] for e in acks(finished, protocol)) == sorted(
                f"{protocol}-{n}" for n in range(1, QUICK["orders"] + 1))
            assert finished.result["protocols"][protocol]["broker"]["depth"] == 0


class TestAmqpLanesEmbedded(AmqpLanesContract):
    mode = "embedded"


class TestAmqpLanesRabbitMQ(AmqpLanesContract):
    mode = "external"
