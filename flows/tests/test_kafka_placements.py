"""The producer's delivery reports: counted, each partition's end offset, and where a message
sent by hand landed (the Publish action's answer); a refusal is an error event."""

from __future__ import annotations

from .kafka_support import FakeRecord


class Refusal:
    def str(self) -> str:
        return "Broker: Not enough in-sync replicas"


class Recording:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def elapsed_ms(self) -> float:
        return 12.5

    def emit(self, kind, actor, message_id="", attempt=1, duplicate=False, **attrs) -> int:
        self.events.append((kind, actor, message_id, attempt, duplicate, attrs))
        return len(self.events)

    def traced(self, message_id: str) -> bool:
        return True

    def untraced_test(self):
        return lambda id_bytes: False

    def emit_many(self, events) -> int:
        self.events.extend(events)
        return len(self.events)


def test_delivery_reports_place_messages_and_a_refusal_is_an_error():
    from flows.kafka.producer import KeyedProducer, Payload, encode

    producer = object.__new__(KeyedProducer)  # only the report handling, no client
    producer.ctx, producer.topic, producer.topic_label = Recording(), "flows.run1.orders", "orders"
    producer._untraced, producer._routed = producer.ctx.untraced_test(), {}
    producer.placements, producer.end_offsets, producer.refused, producer.failed = {}, {}, set(), 0
    producer.confirmed = 0
    producer._delivered(None, FakeRecord(encode(Payload("m-1", "key-1", 1, 10.0), 100), 2, 0))
    producer._delivered(Refusal(), FakeRecord(encode(Payload("m-2", "key-2", 1, 11.0), 100), 0, -1))
    producer._delivered_by_hand(None, FakeRecord(encode(Payload("m-3", "mine", 1, 10.0), 100), 1, 4))
    producer._delivered_by_hand(Refusal(), FakeRecord(encode(Payload("m-4", "mine", 2, 11.0), 100), 1, -1))
    # Where a message landed is kept only for those sent by hand (the run's own are counted).
    assert producer.placements == {"m-3": (1, 4)} and producer.confirmed == 2
    assert producer.end_offsets == {2: 1, 1: 5}
    assert producer.refused == {"m-2", "m-4"} and producer.failed == 2
    publish, route, error, *hand = producer.ctx.events
    assert publish[:3] == ("publish", "producer", "m-1") and publish[5]["perceived_ms"] == 2.5
    assert route[:3] == ("route", "topic:orders/p2", "m-1") and route[5]["key"] == "key-1"
    assert error[0] == "error" and error[2] == "m-2" and "Not enough in-sync replicas" in error[5]["reason"]
