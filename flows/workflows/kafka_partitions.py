"""``kafka-partitions``: keys hash to partitions, each partition is an ordered log of offsets (lesson 6).

The producer sends N messages over K keys to a topic of P partitions with librdkafka's
``murmur2_random`` partitioner, which hashes a key exactly like the Java client
(``murmur2(key) % P``), so a key lands in the same partition whichever client sent it.
Every message of one key therefore sits in one partition, in the order it was sent.

A reader assigns itself every partition (no consumer group, so no join to wait for) and
reads each lane from offset 0; the end offsets it reports are the high watermarks of its
fetch responses.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from ..context import RunContext
from ..kafka.hands import SLOW_PARAMS, HandPublishing, dawdle
from ..params import bool_param, choice_param, float_param, int_param
from ..registry import Workflow, action

TOPIC_LABEL = "orders"
READER = "consumer:reader"
# After the last delivery report: how long the reader may take to see every message.
READ_TIMEOUT_S = 30.0
# acks=0 confirms nothing, so a message that never arrives is only noticed by waiting.
ACKS0_GRACE_S = 3.0


class KafkaPartitions(HandPublishing, Workflow):
    slug = "kafka-partitions"
    title = "Kafka partitions, keys and offsets"
    pattern = "async"
    protocol = "kafka"
    broker = "kafka"
    lesson = (
        "A Kafka topic is split into partitions, each an append-only log numbered by offsets. The producer "
        "hashes each message's key to pick its partition (murmur2, as the Java client does), so all messages "
        "of one key land in one partition, in the order they were sent. Order holds per key, not across keys."
    )
    params = {
        "partitions": int_param(4, 1, 32, "Partitions of the topic"),
        "keys": int_param(6, 1, 64, "Distinct message keys (round robin over the messages)"),
        "messages": int_param(24, 0, 1_000_000, "Messages to produce (0 with interactive: only what you publish)"),
        "rate": float_param(4.0, 0.0, 100_000.0, "Messages per second (0 = as fast as possible)"),
        "acks": choice_param("all", ("0", "1", "all"),
                             "Broker confirmations the producer waits for: 0 = none (no offset comes back), "
                             "1 = the leader, all = every in-sync replica", label="acks"),
        "idempotent": bool_param(False, "Idempotent producer: the broker drops a retried duplicate and keeps "
                                        "per-partition order (needs acks=all)", label="Idempotent producer"),
        "message_bytes": int_param(100, 32, 100_000, "Size of each message value in bytes"),
    }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        cleaned, errors = super().validate(given)
        if not errors and cleaned["idempotent"] and cleaned["acks"] != "all":
            errors["acks"] = "the idempotent producer needs acks=all"
        return cleaned, errors

    def expected(self, params: dict[str, Any]) -> int:
        return params["messages"]

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        from ..kafka.clients import topic_name
        from ..kafka.producer import KeyedProducer
        from ..kafka.teardown import create_run_topic

        p, ctx = self.p, self.ctx
        self.reader = None
        bootstrap = ctx.broker("kafka").bootstrap_servers
        self.topic = topic_name(ctx.namespace, TOPIC_LABEL)
        create_run_topic(ctx.run_id, bootstrap, self.topic, p["partitions"])  # deleted when the run ends
        self.producer = KeyedProducer(ctx, bootstrap, self.topic, TOPIC_LABEL, keys=p["keys"],
                                      message_bytes=p["message_bytes"], acks=p["acks"], idempotent=p["idempotent"])
        self.reader = PartitionReader(ctx, bootstrap, self.topic, p["partitions"], plan=p["messages"])

    def start_consumers(self) -> None:
        self.reader.start()
        # Produce once the reader is fetching every lane, so the first messages' end-to-end
        # times do not include the reader's start-up.
        self.ctx.wait_for(self.reader.ready, READ_TIMEOUT_S, "the reader's first fetch from every partition")

    def produce(self) -> None:
        self.first = time.perf_counter()
        self.producer.send_all(self.p["messages"], self.p["rate"])
        self.producer.flush()

    def settle(self) -> None:
        self.producer.flush()  # the reports of records published by hand, too
        # Full speed again, so a backlog built by hand drains within the deadline.
        self.reader.delay_ms = 0
        reader, confirmed = self.reader, self.producer.confirmed
        try:
            self.ctx.wait_until(lambda: reader.count >= confirmed or reader.error is not None,
                                ACKS0_GRACE_S if self.p["acks"] == "0" else READ_TIMEOUT_S,
                                f"the reader to see all {confirmed} confirmed messages", wake=reader.progress)
        except TimeoutError:
            if self.p["acks"] != "0":
                raise
            # acks=0 confirms nothing: what never arrived is reported as lost, not as a failure.
        self.elapsed = time.perf_counter() - self.first
        reader.stop()
        if reader.error:
            raise RuntimeError(f"the reader failed: {reader.error}")

    def report(self) -> dict[str, Any]:
        return self._result(self.p, self.topic, self.producer, self.reader, self.elapsed)

    def teardown(self) -> None:
        if self.reader is not None and self.reader.is_alive():
            self.reader.stop()
        # The result has what it needs of the reads; the reads themselves (24 MB at a million
        # messages) go before the runner stores the result, the run's highest point of memory.
        self.reader = None

    # -- by hand (Publish comes with HandPublishing) ----------------------------------------

    @action("Slow the reader", target="consumer", picks=True, params=SLOW_PARAMS, hands_on=True)
    def on_slow(self, target: str, delay_ms: int) -> str:
        if self.reader is None:
            return f"{READER} is not there yet; nothing slowed"
        self.reader.delay_ms = delay_ms
        if not delay_ms:
            return f"{READER} back to full speed"
        return f"{READER} now spends {delay_ms} ms more on every record: watch its partitions' backlog grow"

    def targets(self, action: str) -> list[str]:
        reader = getattr(self, "reader", None)
        return [READER] if reader is not None and reader.is_alive() else []

    @staticmethod
    def _result(p: dict[str, Any], topic: str, producer: Any, reader: PartitionReader, elapsed: float) -> dict[str, Any]:
        from ..kafka.offsets import topic_figures
        from ..kafka.partitioner import murmur2, partition_for

        keys: dict[str, Any] = {}
        shared = SharedInts()
        for key in producer.all_keys():
            reads = reader.by_key.get(key) or KeyReads(key)
            keys[key] = {
                "murmur2": murmur2(key.encode()),
                "expected_partition": partition_for(key.encode(), p["partitions"]),
                "partitions": sorted(reads.partitions),
                "reads": reads.reads,
                "first_offset": reads.first_offset,
                "last_offset": reads.last_offset,
                # Per-key order: the reader, reading each lane from offset 0, saw this key's messages in send
                # order, all from one partition (each read that broke it is a deliver/process with a reason).
                "in_order": not reads.out_of_order,
            }
            if reader.lanes is not None:  # the run recorded every event: each read, too
                seqs, _parts, offsets = (reader.lanes.get(key) or KeyLane()).columns()
                keys[key]["offsets"], keys[key]["seqs"] = shared.of(offsets), shared.of(seqs)
        lanes = {str(part): {"end_offset": reader.end_offsets.get(part), "messages": reader.per_partition.get(part, 0),
                             "keys": sorted({k for k, v in keys.items() if part in v["partitions"]})}
                 for part in range(p["partitions"])}
        sent = producer.sent
        return {
            **topic_figures(topic, p["partitions"], reader.end_offsets, producer.end_offsets),
            "acks": p["acks"],
            "idempotent_producer": p["idempotent"],
            "sent": sent,
            "confirmed": producer.confirmed,
            "read": reader.count,
            "lost": max(0, sent - producer.failed - reader.count),
            "lanes": lanes,
            "keys": keys,
            "per_key_order": all(k["in_order"] for k in keys.values()),
            "throughput_per_s": round(reader.count / elapsed, 1) if elapsed > 0 else None,
        }


class PartitionReader(threading.Thread):
    """Reads every partition of the topic from offset 0, on its own thread, without a group."""

    BATCH = 500
    POLL_S = 0.1

    def __init__(self, ctx: RunContext, bootstrap: str, topic: str, partitions: int,
                 plan: int | None = None) -> None:
        super().__init__(name=f"kafka-reader-{ctx.run_id}", daemon=True)
        self.ctx = ctx
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.plan = plan  # messages the run scripted (later ids were published by hand); None: all
        self.delay_ms = 0  # the Slow action's extra time per record
        self.count = 0
        # Whether message n was read (a byte per message number), and the attempt of each id read
        # more than once: a record written twice (a producer retry without idempotence) is a second
        # delivery to the same logical consumer, a duplicate, not more progress.
        self._seen = bytearray()
        self.again: dict[str, int] = {}
        self.per_partition: dict[int, int] = {}
        self.by_key: dict[str, KeyReads] = {}  # key → its reads so far (the per-key order check)
        self._keys: dict[bytes, KeyReads] = {}  # the same, by the key's bytes in the value's header
        # key → (seq, partition, offset) of each read, in read order, while the run records every event;
        # None once it samples (no one follows a run that big message by message).
        self.lanes: dict[str, KeyLane] | None = {}
        self._untraced = ctx.untraced_test()
        self.end_offsets: dict[int, int] = {}
        self.error: str | None = None
        self.progress = threading.Event()
        self.ready = threading.Event()  # every partition has answered a fetch
        self._consumer: Any = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(10.0)

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from ..kafka.clients import poll_batch, reader_config
        from ..kafka.offsets import cached_end_offsets

        consumer = None
        try:
            consumer = self._consumer = Consumer(reader_config(self.bootstrap, f"{self.topic}.reader"))
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            while not self._halt.is_set():
                messages = poll_batch(consumer, self.BATCH, self.POLL_S)
                if messages:
                    self._read(messages)
                if not self.ready.is_set() and len(cached_end_offsets(consumer, self.topic, range(self.partitions))) == \
                        self.partitions:
                    self.ready.set()
            self.end_offsets = cached_end_offsets(consumer, self.topic, range(self.partitions))
        except Exception as exc:  # noqa: BLE001 - reported by the workflow
            self.error = f"{type(exc).__name__}: {exc}"
            self.ctx.emit("error", READER, reason=self.error)
        finally:
            if consumer is not None:
                consumer.close()
            self.progress.set()

    def _read(self, messages: list[Any]) -> None:
        """Count, check and (if traced) record a fetched batch; runs once per record, so a plain
        record of a sampling run costs a split of its header, a CRC and a few counters."""
        plan, seen, keys_get = self.plan, self._seen, self._keys.get
        untraced_test, traced = self._untraced, self.ctx.traced
        events: list[tuple] = []  # the batch's events, stamped together (one lock round trip)
        ends: dict[int, int | None] = {}  # one watermark look-up per partition per batch
        untraced: dict[int, int] = {}
        read = 0
        for m in messages:
            if m.error() is not None:
                continue
            if self.delay_ms:
                read = self._record(events, read, untraced)  # a slowed reader shows each record as it goes
                dawdle(lambda: self.delay_ms, self._halt)
            value = m.value()
            head, key, seq, _rest = value.split(b"|", 3)
            number = int(head[2:])  # ids are "m-<n>" (producer.message_id)
            try:
                before = seen[number]
            except IndexError:
                seen.extend(bytes(max(number + 1 - len(seen), len(seen))))
                before = 0
            sequence, partition, reads = int(seq), m.partition(), keys_get(key)
            # A sampling run counts a plain message's events (per batch, in ``_record``) instead of recording them.
            plain = not before and (plan is None or number <= plan) and (untraced_test(head) or not traced(head.decode()))
            if plain and reads is not None and sequence >= reads.seq and partition == reads.partition:
                # The common case in O(1): a first read, in its key's order, of a message not in the sample.
                seen[number] = 1
                untraced[partition] = untraced.get(partition, 0) + 1
                reads.seq, reads.last_offset = sequence, m.offset()
                reads.reads += 1
            else:
                self._unusual(events, m, value, head, key, sequence, before, plain, untraced, ends)
            read += 1
        self._record(events, read, untraced)
        self.progress.set()

    def _unusual(self, events: list[tuple], m: Any, value: bytes, head: bytes, key: bytes, seq: int, before: int,
                 plain: bool, untraced: dict[int, int], ends: dict[int, int | None]) -> None:
        """Every read but a plain one in order: a key's first, one out of its key's order, a traced
        message, a message read again, one sent by hand; each read too while ``lanes`` keeps them."""
        partition, offset = m.partition(), m.offset()
        reads = self._keys.get(key) or self._key(key, value)
        why = reads.read(seq, partition, offset)
        lanes = self.lanes
        if lanes is not None:
            lane = lanes.get(reads.name)
            if lane is None:
                lane = lanes[reads.name] = KeyLane()
            lane.extend((seq, partition, offset))
        number = int(head[2:])
        if before:
            # Read once more: a record written twice (a producer retry without idempotence) is a
            # second delivery to the same logical consumer, a duplicate, always recorded.
            mid = head.decode()
            attempt = self.again[mid] = self.again.get(mid, 1) + 1
            self._traced(events, m, value, attempt, ends, why)
        elif plain and not why:
            self._seen[number] = 1
            untraced[partition] = untraced.get(partition, 0) + 1
            return  # counted with the batch's other plain reads
        else:
            self._seen[number] = 1
            self._traced(events, m, value, 1, ends, why)
        self.per_partition[partition] = self.per_partition.get(partition, 0) + 1

    def _key(self, key: bytes, value: bytes) -> KeyReads:
        """The reads of a key first seen in this value (by its bytes, and by its name in ``by_key``)."""
        from ..kafka.producer import decode

        name = decode(value).key
        reads = self._keys[key] = self.by_key.setdefault(name, KeyReads(name))
        return reads

    def _traced(self, events: list[tuple], m: Any, value: bytes, attempt: int,
                ends: dict[int, int | None], why: str = "") -> None:
        """The deliver and process events of one record, with what marks it (a duplicate, sent by hand)."""
        from ..kafka.offsets import cached_end_offset
        from ..kafka.producer import decode, number_of

        payload = decode(value)
        mid, key, plan = payload.message_id, payload.key, self.plan
        partition, offset = m.partition(), m.offset()
        if partition not in ends:
            ends[partition] = cached_end_offset(self._consumer, self.topic, partition)
        topic, duplicate = self.topic, attempt > 1
        delivered = {"topic": topic, "partition": partition, "offset": offset, "key": key, "member": "reader",
                     "end_offset": ends[partition]}
        processed = {"topic": topic, "partition": partition, "offset": offset, "key": key, "member": "reader",
                     "end_to_end_ms": round(self.ctx.elapsed_ms() - payload.published_ms, 3)}
        reasons = [why] if why else []
        if duplicate:
            reasons.insert(0, f"the same message again at offset {offset}: written twice by a producer retry "
                              "(idempotent producer off)")
        extra: dict[str, Any] = {"reason": "; ".join(reasons)} if reasons else {}
        if plan is not None and number_of(mid) > plan:
            extra["planned"] = False
        delivered.update(extra)
        processed.update(extra)
        events.append(("deliver", READER, mid, attempt, duplicate, delivered))
        events.append(("process", READER, mid, attempt, duplicate, processed))

    def _record(self, events: list[tuple], read: int, untraced: dict[int, int]) -> int:
        """Stamp the events gathered so far (and count the untraced messages' of a sampling
        run), then count their records as read; 0, what is left to count.

        In this order, whoever waits for the count finds the events already recorded.
        """
        if events:
            self.ctx.emit_many(events)
            events.clear()
        if untraced:
            tally, per_partition = self.ctx.tally, self.per_partition
            for partition, n in untraced.items():
                tally(f"topic:{TOPIC_LABEL}/p{partition}", READER, "deliver", n)
                per_partition[partition] = per_partition.get(partition, 0) + n
            tally(READER, READER, "process", sum(untraced.values()))
            untraced.clear()
            self.lanes = None  # plain reads are only counted: the lanes would miss them
        self.count += read
        return 0


class KeyReads:
    """One key's reads so far, in O(1) space: enough to check per-key order as they come.

    Per-key order holds while every read of the key comes from the partition of its first read
    with a sequence number not below the previous read's (the same message read again is no
    break); ``read`` says why a read breaks it, and the reader records that read with the reason.
    """

    __slots__ = ("name", "seq", "partition", "partitions", "reads", "first_offset", "last_offset", "out_of_order")

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0  # of the last read
        self.partition = -1  # of the last read
        self.partitions: set[int] = set()
        self.reads = 0
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.out_of_order = 0  # reads that broke per-key order

    def read(self, seq: int, partition: int, offset: int) -> str:
        """Count a read; why it breaks per-key order, or ''."""
        why = ""
        if not self.reads:
            self.first_offset = offset
        elif partition != self.partition:
            why = (f"{self.name} read from partition {partition} after partition {self.partition}: "
                   "its messages are no longer in one partition")
        elif seq < self.seq:
            why = f"{self.name} seq {seq} read after seq {self.seq}: out of send order"
        if why:
            self.out_of_order += 1
        self.partitions.add(partition)
        self.seq, self.partition, self.last_offset = seq, partition, offset
        self.reads += 1
        return why


class KeyLane(array):
    """One key's reads in read order, (seq, partition, offset) flat in one array: no object per message."""

    def __new__(cls) -> KeyLane:
        return super().__new__(cls, "q")

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        flat = self.tolist()
        return zip(flat[0::3], flat[1::3], flat[2::3])

    def columns(self) -> tuple[Sequence[int], Sequence[int], Sequence[int]]:
        """The reads as three columns (seqs, partitions, offsets), without an object per read."""
        return self[0::3], self[1::3], self[2::3]




class SharedInts:
    """One int object per value across a result's lists.

    A million-message result lists a million offsets and a million sequence numbers; as
    separate ints past 256 they cost 32 bytes each on top of the list's 8. Offsets and
    sequence numbers run over the same small ranges (0 to the longest lane), so each list
    points into one table of ints, built once: the lists cost their 8 bytes a slot.
    """

    def __init__(self) -> None:
        self._table: list[int] = []

    def of(self, values: Sequence[int]) -> list[int]:
        if not values or min(values) < 0:  # none expected below 0; kept as they are
            return list(values)
        table, top = self._table, max(values)
        if top >= len(table):
            table.extend(range(len(table), top + 1))
        return [table[v] for v in values]
