"""End offsets and lag, taken from the fetch side.

A consumer learns each partition's high watermark (the end offset) from every fetch
response; ``get_watermark_offsets(tp, cached=True)`` returns that value without a request.
The other way to ask, ListOffsets(latest) (``cached=False``, ``AdminClient.list_offsets``),
is answered wrongly by the embedded Tansu build whenever a record batch holds more than one
record (it reports the last batch's base offset + 1), so nothing here uses it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .clients import PARTITIONER

UNKNOWN = -1001  # librdkafka's OFFSET_INVALID: no fetch response seen yet


def cached_end_offset(consumer: Any, topic: str, partition: int) -> int | None:
    """The high watermark of the last fetch response for this partition, or None before any."""
    from confluent_kafka import TopicPartition

    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    return high if high >= 0 else None


def cached_end_offsets(consumer: Any, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for partition in partitions:
        high = cached_end_offset(consumer, topic, partition)
        if high is not None:
            out[partition] = high
    return out


def fetch_end_offsets(bootstrap: str, topic: str, partitions: int, timeout: float = 10.0) -> dict[int, int]:
    """Every partition's end offset as a fresh fetch reports it.

    A throwaway reader assigns all partitions from the beginning and polls until each has
    had a fetch response (its cached high watermark is known); it never joins a group.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from .clients import reader_config

    consumer = Consumer(reader_config(bootstrap, f"{topic}.end-offsets", client_id="flows-end-offsets"))
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while True:
            ends = cached_end_offsets(consumer, topic, range(partitions))
            if len(ends) == partitions:
                return ends
            if time.monotonic() >= deadline:
                missing = sorted(set(range(partitions)) - set(ends))
                raise TimeoutError(f"no fetch response for {topic} partitions {missing} within {timeout:g} s")
            consumer.consume(num_messages=1000, timeout=0.05)
    finally:
        consumer.close()


def lag(end_offsets: Mapping[int, int], committed: Mapping[int, int]) -> dict[int, int]:
    """Per partition: records the group has not committed yet (a group with no commit is at 0)."""
    return {p: max(0, end - max(0, committed.get(p, 0))) for p, end in end_offsets.items()}


def fetch_committed(bootstrap: str, group_id: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The group's committed offsets on ``topic`` as the broker reports them (OffsetFetch)."""
    from .clients import admin_client

    return committed_by(admin_client(bootstrap), group_id, topic, timeout)


def committed_by(admin: Any, group_id: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """``fetch_committed`` through an admin client the caller holds (and keeps until this returns:
    its futures never resolve once it is gone)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout)
    answer = futures[group_id].result(timeout=timeout)
    return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.topic == topic and tp.offset >= 0}


class LagProbe:
    """A group's lag on a topic, asked of the broker as often as a sampler likes.

    ``fetch_end_offsets`` and ``fetch_committed`` build a client per call, too dear ten times
    a second. The probe holds both: a reader that keeps fetching every partition from the
    start (its fetch responses carry the end offsets, see the module doc) and an admin
    client for OffsetFetch. Any thread; one read at a time.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int, group_id: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from .clients import admin_client, reader_config

        self.topic, self.partitions, self.group_id = topic, partitions, group_id
        self._lock = threading.Lock()
        self._admin = admin_client(bootstrap)
        self._reader = Consumer(reader_config(bootstrap, f"{topic}.lag", client_id="flows-lag-probe"))
        self._reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

    def read(self, timeout: float = 5.0) -> tuple[dict[int, int], dict[int, int]]:
        """(end offsets, committed offsets) per partition, the end offsets once every partition had a fetch answer."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                # The records themselves are not wanted; taking them keeps the reader fetching.
                self._reader.consume(num_messages=10_000, timeout=0)
                ends = cached_end_offsets(self._reader, self.topic, range(self.partitions))
                if len(ends) == self.partitions:
                    break
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no fetch response for {self.topic} within {timeout:g} s")
                self._reader.consume(num_messages=10_000, timeout=0.05)
            return ends, committed_by(self._admin, self.group_id, self.topic, max(0.5, deadline - time.monotonic()))

    def lag(self, timeout: float = 5.0) -> int:
        """Records the group has not committed yet, over all partitions."""
        return sum(lag(*self.read(timeout)).values())

    def close(self) -> None:
        with self._lock:
            self._reader.close()


def topic_figures(topic: str, partitions: int, fetched: Mapping[Any, int], confirmed: Mapping[int, int]) -> dict[str, Any]:
    """What every Kafka result says about its topic, under the same keys.

    ``fetched``: the end offsets the fetch side saw (high watermarks); ``confirmed``: 1 + the
    highest offset the producer's delivery reports confirmed, per partition.
    """
    return {
        "topic": topic,
        "partitions": partitions,
        "partitioner": f"{PARTITIONER}: the Java client's murmur2(key) % partitions",
        "end_offsets": {str(part): end for part, end in sorted(fetched.items(), key=lambda kv: int(kv[0]))},
        "produced_end_offsets": {str(part): end for part, end in sorted(confirmed.items())},
    }
