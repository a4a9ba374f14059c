"""kafka-partitions' reader: a record written twice is a duplicate delivery, not more progress."""

from __future__ import annotations

from flows.kafka import offsets
from flows.kafka.producer import Payload, encode
from flows.summary import SummaryBuilder
from flows.workflows.kafka_partitions import PartitionReader

from .kafka_support import FakeRecord


def Record(payload: Payload, partition: int, offset: int) -> FakeRecord:  # noqa: N802 - reads as the record it builds
    return FakeRecord(encode(payload, 0), partition, offset)


class Context:
    run_id = 1

    def __init__(self) -> None:
        self.events: list[dict] = []

    def elapsed_ms(self) -> float:
        return 10.0

    def emit(self, kind, actor, message_id="", attempt=1, duplicate=False, **attrs) -> None:
        self.events.append({"seq": len(self.events) + 1, "t_ms": 1.0, "kind": kind, "actor": actor,
                            "message_id": message_id, "attempt": attempt, "duplicate": duplicate, "attrs": attrs})

    def traced(self, message_id: str) -> bool:
        return True

    def untraced_test(self):
        return lambda id_bytes: False

    def emit_many(self, events) -> None:
        for kind, actor, message_id, attempt, duplicate, attrs in events:
            self.emit(kind, actor, message_id, attempt, duplicate, **attrs)


def test_a_record_read_twice_is_a_duplicate(monkeypatch):
    monkeypatch.setattr(offsets, "cached_end_offset", lambda consumer, topic, partition: 3)
    ctx = Context()
    reader = PartitionReader(ctx, "unused:9092", "t", 1)
    first, second = Payload("m-1", "key-1", 1, 0.0), Payload("m-2", "key-2", 1, 0.0)
    # m-1 written twice (a producer retry without idempotence): offsets 0 and 2.
    reader._read([Record(first, 0, 0), Record(second, 0, 1), Record(first, 0, 2)])
    again = [e for e in ctx.events if e["message_id"] == "m-1" and e["duplicate"]]
    assert [(e["kind"], e["attempt"]) for e in again] == [("deliver", 2), ("process", 2)]
    assert "offset 2" in again[0]["attrs"]["reason"]
    summary = SummaryBuilder().feed_all(ctx.events).snapshot()
    assert summary["planned"]["process"] == 2 and summary["counts"]["duplicates"] == 1


def test_the_reader_keeps_each_keys_reads_in_order_and_marks_hand_published_ones(monkeypatch):
    monkeypatch.setattr(offsets, "cached_end_offset", lambda consumer, topic, partition: 5)
    ctx = Context()
    reader = PartitionReader(ctx, "unused:9092", "t", 2, plan=2)
    records = [Record(Payload("m-1", "key-1", 1, 0.0), 1, 0), Record(Payload("m-2", "key-2", 1, 0.0), 0, 0),
               Record(Payload("m-1000", "key-1", 2, 0.0), 1, 1)]  # beyond the plan: published by hand
    reader._read(records[:2])
    reader._read(records[2:])
    # Recording every event, the reader lists each read of a key too (seq, partition, offset).
    assert list(reader.lanes["key-1"]) == [(1, 1, 0), (2, 1, 1)] and reader.by_key["key-1"].out_of_order == 0
    assert reader.count == 3 and reader.per_partition == {1: 2, 0: 1}
    unplanned = {e["message_id"] for e in ctx.events if e["attrs"].get("planned") is False}
    assert unplanned == {"m-1000"} and not any(e["duplicate"] for e in ctx.events)
    assert [e["kind"] for e in ctx.events] == ["deliver", "process"] * 3
