"""kafka-partitions' hot paths in a sampling run: plain messages counted per batch, exactly;
every anomaly and every traced message still recorded one by one (contracts: "Fidelity")."""

from __future__ import annotations

import zlib

from flows.context import RunContext
from flows.fidelity import Fidelity
from flows.kafka import offsets
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


class Log:
    """Records appended to a topic the way the producer's partitioner does: a key's messages in one partition."""

    def __init__(self, partitions: int = 2) -> None:
        self.ends = dict.fromkeys(range(partitions), 0)

    def partition_of(self, n: int) -> int:
        return n % 3 % len(self.ends)  # record(n) has the key key-<n % 3>

    def append(self, n: int, seq: int | None = None) -> FakeRecord:
        partition = self.partition_of(n)
        offset, self.ends[partition] = self.ends[partition], self.ends[partition] + 1
        return FakeRecord(encode(Payload(f"m-{n}", f"key-{n % 3}", n if seq is None else seq, 0.0), 100),
                          partition, offset)


def test_the_reader_counts_plain_reads_and_records_duplicates_and_the_sample(monkeypatch):
    monkeypatch.setattr(offsets, "cached_end_offset", lambda consumer, topic, partition: 9)
    ctx, kept = sampling_context()
    plain, sample = ids(ctx, False, 12), ids(ctx, True, 1)
    log = Log()
    reader = PartitionReader(ctx, "unused:9092", "t", 2, plan=max(plain + sample))
    # Plain messages; more of them with the sample's message; then the last two plain ones read again.
    reader._read([log.append(n) for n in plain[:6]])
    reader._read([log.append(n) for n in plain[6:]] + [log.append(sample[0])])
    reader._read([log.append(plain[-2]), log.append(plain[-1])])
    recorded = [(kind, mid, attempt, dup) for _seq, _t, kind, _actor, mid, attempt, dup, _attrs in kept.events]
    assert recorded == [("deliver", f"m-{sample[0]}", 1, False), ("process", f"m-{sample[0]}", 1, False),
                        ("deliver", f"m-{plain[-2]}", 2, True), ("process", f"m-{plain[-2]}", 2, True),
                        ("deliver", f"m-{plain[-1]}", 2, True), ("process", f"m-{plain[-1]}", 2, True)]
    assert "the same message again at offset" in kept.events[2][7]["reason"]
    # The plain first reads, exactly, per partition.
    first = {p: sum(1 for n in plain if log.partition_of(n) == p) for p in (0, 1)}
    assert counted(ctx) == {**{(f"topic:orders/p{p}", "consumer:reader", "deliver"): first[p] for p in (0, 1) if first[p]},
                            ("consumer:reader", "consumer:reader", "process"): 12}
    assert reader.count == 15 and reader.per_partition == log.ends
    # A sampling run keeps each key's running order check and counts, not a list of its reads.
    assert reader.lanes is None and sum(reads.reads for reads in reader.by_key.values()) == 15


def test_a_read_out_of_its_keys_order_is_recorded_with_why_and_the_counts_stay_exact(monkeypatch):
    monkeypatch.setattr(offsets, "cached_end_offset", lambda consumer, topic, partition: 9)
    ctx, kept = sampling_context()
    plain = [n for n in ids(ctx, False, 40) if n % 3 == 1][:4]  # one key's messages
    log = Log()
    reader = PartitionReader(ctx, "unused:9092", "t", 2, plan=max(plain))
    # The third message's record carries a seq below the second's: written out of send order.
    reader._read([log.append(plain[0], 1), log.append(plain[1], 5), log.append(plain[2], 3), log.append(plain[3], 6)])
    recorded = [(kind, mid, dup) for _seq, _t, kind, _actor, mid, _attempt, dup, _attrs in kept.events]
    assert recorded == [("deliver", f"m-{plain[2]}", False), ("process", f"m-{plain[2]}", False)]
    assert kept.events[0][7]["reason"] == "key-1 seq 3 read after seq 5: out of send order"
    assert counted(ctx)[("consumer:reader", "consumer:reader", "process")] == 3  # the other three, counted
    reads = reader.by_key["key-1"]
    assert (reads.reads, reads.out_of_order, reads.first_offset, reads.last_offset) == (4, 1, 0, 3)
    assert reader.count == 4 and reader.per_partition == {1: 4}


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
    producer.placements, producer.end_offsets, producer.refused, producer.failed = {}, {}, set(), 0
    producer.confirmed = 0
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
    assert producer.confirmed == 6 and producer.placements == {}  # only messages sent by hand are placed
    assert producer.end_offsets == {0: 3, 1: 4}
