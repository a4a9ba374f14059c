"""kafka-partitions' hot paths in a sampling run: plain messages counted per batch, exactly;
every anomaly and every traced message still recorded one by one (contracts: "Fidelity")."""

from __future__ import annotations

import zlib

from flows.context import RunContext
from flows.fidelity import Fidelity
from flows.kafka import offsets
from flows.kafka.placements import Placements
from flows.kafka.producer import KeyedProducer, Payload, encode
from flows.recorder import Recorder
from flows.workflows.kafka_partitions import PartitionReader

from .kafka_support import FakeRecord


class Kept:
    """A pipeline stand-in that keeps every stamped event."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def wake(self, recorder: Recorder) -> None:
        self.events.extend(recorder.take())


def sampling_context() -> tuple[RunContext, Kept]:
    kept = Kept()
    return RunContext(1, {}, Recorder(1, kept, fidelity=Fidelity("sampled"))), kept


def ids(ctx: RunContext, traced: bool, count: int) -> list[int]:
    """Message numbers the run's sample takes (or leaves out)."""
    every = ctx.recorder.fidelity.every
    return [n for n in range(1, 100_000) if (zlib.crc32(f"m-{n}".encode()) % every == 0) == traced][:count]


def counted(ctx: RunContext) -> dict[tuple[str, str, str], int]:
    frame = ctx.recorder.fidelity.frame(0.0) or {"edges": []}
    return {(e["from"], e["to"], e["kind"]): e["count"] for e in frame["edges"]}


def record(n: int, partition: int, offset: int) -> FakeRecord:
    return FakeRecord(encode(Payload(f"m-{n}", f"key-{n % 3}", n, 0.0), 100), partition, offset)


def test_the_reader_counts_plain_reads_and_records_duplicates_and_the_sample(monkeypatch):
    monkeypatch.setattr(offsets, "cached_end_offset", lambda consumer, topic, partition: 9)
    ctx, kept = sampling_context()
    plain, sample = ids(ctx, False, 12), ids(ctx, True, 1)
    reader = PartitionReader(ctx, "unused:9092", "t", 2, plan=max(plain + sample))
    # Plain messages; more of them with the sample's message; then two plain ones read again.
    reader._read([record(n, i % 2, i // 2) for i, n in enumerate(plain[:6])])
    reader._read([record(n, i % 2, 3 + i // 2) for i, n in enumerate(plain[6:])] + [record(sample[0], 0, 6)])
    reader._read([record(plain[0], 1, 6), record(plain[1], 1, 7)])
    recorded = [(kind, mid, attempt, dup) for _seq, _t, kind, _actor, mid, attempt, dup, _attrs in kept.events]
    assert recorded == [("deliver", f"m-{sample[0]}", 1, False), ("process", f"m-{sample[0]}", 1, False),
                        ("deliver", f"m-{plain[0]}", 2, True), ("process", f"m-{plain[0]}", 2, True),
                        ("deliver", f"m-{plain[1]}", 2, True), ("process", f"m-{plain[1]}", 2, True)]
    assert "offset 6" in kept.events[2][7]["reason"]
    # The plain first reads, exactly, per partition: six on each.
    assert counted(ctx) == {("topic:orders/p0", "consumer:reader", "deliver"): 6,
                            ("topic:orders/p1", "consumer:reader", "deliver"): 6,
                            ("consumer:reader", "consumer:reader", "process"): 12}
    assert reader.count == 15 and reader.per_partition == {0: 7, 1: 8}
    lane = list(reader.by_key[f"key-{plain[0] % 3}"])
    assert lane[0] == (plain[0], 0, 0) and lane[-1] == (plain[0], 1, 6)
    assert sum(len(list(reads)) for reads in reader.by_key.values()) == 15


class Client:
    """The producer's client with nothing in flight: poll and flush serve no reports."""

    def poll(self, seconds: float) -> int:
        return 0

    def flush(self, seconds: float) -> int:
        return 0


def test_the_producer_counts_plain_reports_once_served_and_records_the_sample():
    ctx, kept = sampling_context()
    producer = object.__new__(KeyedProducer)  # only the report handling, no client
    producer.ctx, producer.topic, producer.topic_label, producer._producer = ctx, "flows.run1.orders", "orders", Client()
    producer._untraced, producer._routed = ctx.untraced_test(), {}
    producer.placements, producer.end_offsets, producer.refused, producer.failed = Placements(), {}, set(), 0
    plain, sample = ids(ctx, False, 5), ids(ctx, True, 1)
    for offset, n in enumerate(plain):
        producer._delivered(None, record(n, offset % 2, offset // 2))
    producer._delivered(None, record(sample[0], 1, 3))
    assert [e[2:5] for e in kept.events] == [("publish", "producer", f"m-{sample[0]}"),
                                            ("route", "topic:orders/p1", f"m-{sample[0]}")]
    assert counted(ctx) == {}  # counted once the poll that ran the reports is over
    producer.serve(0)
    assert counted(ctx) == {("producer", "producer", "publish"): 5, ("producer", "topic:orders/p0", "route"): 3,
                            ("producer", "topic:orders/p1", "route"): 2}
    assert len(producer.placements) == 6 and producer.placements[f"m-{plain[4]}"] == (0, 2)
    assert producer.end_offsets == {0: 3, 1: 4}
