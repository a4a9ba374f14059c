"""The producer's record of where each message landed, kept in flat arrays by message number."""

from __future__ import annotations

import pytest

from flows.kafka.placements import Placements

from .kafka_support import FakeRecord


def test_placements_answer_like_the_dict_they_replace():
    placed = Placements()
    placed.put("m-2", 1, 7)
    placed.put("m-9000", 0, None)  # acks=0: no offset; far beyond the first block
    assert len(placed) == 2
    assert "m-2" in placed and "m-9000" in placed and "m-1" not in placed and "m-9001" not in placed
    assert placed["m-2"] == (1, 7) and placed["m-9000"] == (0, None) and placed.get("m-3") is None
    with pytest.raises(KeyError):
        placed["m-1"]
    assert list(placed.values()) == [(1, 7), (0, None)]


def test_a_second_report_for_the_same_message_is_not_counted_twice():
    placed = Placements()
    placed.put("m-1", 0, 0)
    placed.put("m-1", 0, 0)
    assert len(placed) == 1


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
    producer.placements, producer.end_offsets, producer.refused, producer.failed = Placements(), {}, set(), 0
    producer._delivered(None, FakeRecord(encode(Payload("m-1", "key-1", 1, 10.0), 100), 2, 0))
    producer._delivered(Refusal(), FakeRecord(encode(Payload("m-2", "key-2", 1, 11.0), 100), 0, -1))
    assert producer.placements["m-1"] == (2, 0) and producer.end_offsets == {2: 1}
    assert producer.refused == {"m-2"} and producer.failed == 1 and "m-2" not in producer.placements
    publish, route, error = producer.ctx.events
    assert publish[:3] == ("publish", "producer", "m-1") and publish[5]["perceived_ms"] == 2.5
    assert route[:3] == ("route", "topic:orders/p2", "m-1") and route[5]["key"] == "key-1"
    assert error[0] == "error" and error[2] == "m-2" and "Not enough in-sync replicas" in error[5]["reason"]
