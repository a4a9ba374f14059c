"""End offsets and lag, taken from the fetch side.

A consumer learns each partition's high watermark (the end offset) from every fetch
response; ``get_watermark_offsets(tp, cached=True)`` returns that value without a request.
The other way to ask, ListOffsets(latest) (``cached=False``, ``AdminClient.list_offsets``),
is answered wrongly by the embedded Tansu build whenever a record batch holds more than one
record (it reports the last batch's base offset + 1), so nothing here uses it.
"""

from __future__ import annotations

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
    from confluent_kafka import ConsumerGroupTopicPartitions

    from .clients import admin_client

    admin = admin_client(bootstrap)  # held: its futures never resolve once it is gone
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout)
    answer = futures[group_id].result(timeout=timeout)
    return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.topic == topic and tp.offset >= 0}


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
