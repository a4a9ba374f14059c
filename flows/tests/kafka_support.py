"""Shared by the Kafka workflow tests: broker modes for a whole class, parallel runs, captured results.

Kafka group joins cost seconds, so each test class starts all of its scenario runs at once
(up to ``FLOWS_MAX_LIVE_RUNS``), waits for them together and hands every test the same
captured summaries and events. The broker stays up until the class is done, so tests can
ask it for its own numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .polling import wait_until as wait_until  # where the Kafka tests have always found it

RUN_TIMEOUT_S = 120.0


@dataclass
class Captured:
    """One finished run as the tests see it."""

    name: str
    params: dict[str, Any]
    state: str
    error: str
    summary: dict[str, Any]
    events: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> dict[str, Any]:
        return self.summary["result"]

    def of(self, kind: str, actor_prefix: str = "") -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind and e["actor"].startswith(actor_prefix)]


@contextmanager
def kafka_mode(mode: str, bootstrap: str | None) -> Iterator[str]:
    """Point the app's Kafka at ``mode`` for a block (a class-scoped ``broker_mode``); yields bootstrap.servers."""
    from django.test import override_settings

    from flows import transports

    setting, url = transports.setting_for("kafka", mode, bootstrap)
    with override_settings(**{setting: url}):
        transports.reset()
        try:
            broker = transports.get_broker("kafka")
            broker.start()
            yield broker.bootstrap_servers
        finally:
            transports.reset()


def run_all(slug: str, scenarios: dict[str, dict[str, Any]],
            during: Callable[[dict[str, Any]], None] | None = None,
            after: Callable[[Captured], None] | None = None) -> dict[str, Captured]:
    """Start every scenario at once, let ``during(started)`` act on live runs, wait, capture.

    ``after`` runs per finished run while the database still holds it (e.g. to count inbox rows).
    """
    from flows import eventstore, registry
    from flows.runner import get_runner, wait_until_finished

    runner = get_runner()
    started = {}
    for name, given in scenarios.items():
        params, errors = registry.get(slug).validate(given)
        assert not errors, (name, errors)
        started[name] = runner.start(slug, params)
    if during is not None:
        during(started)
    captured = {}
    for name, run in started.items():
        finished = wait_until_finished(run.pk, RUN_TIMEOUT_S)
        captured[name] = Captured(name, finished.params, finished.state, finished.error, runner.summary(run.pk),
                                  eventstore.read_events(run.pk, 0, 1_000_000))
        if after is not None:
            after(captured[name])
    return captured


def java_murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``, ported line by line with Java's wrapping int arithmetic.

    Written independently of ``flows.kafka.partitioner`` so the tests check the product
    against a second implementation, itself checked against Kafka's own test vectors.
    """

    def i32(x: int) -> int:
        x &= 0xFFFFFFFF
        return x - 0x100000000 if x & 0x80000000 else x

    def ushr(x: int, n: int) -> int:  # Java's >>>
        return (x & 0xFFFFFFFF) >> n

    length = len(data)
    seed, m, r = i32(0x9747B28C), 0x5BD1E995, 24
    h = i32(seed ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = i32((data[i4] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8) + ((data[i4 + 2] & 0xFF) << 16)
                + ((data[i4 + 3] & 0xFF) << 24))
        k = i32(k * m)
        k = i32(k ^ ushr(k, r))
        k = i32(k * m)
        h = i32(h * m)
        h = i32(h ^ k)
    rest = length % 4
    base = length & ~3
    if rest == 3:
        h = i32(h ^ ((data[base + 2] & 0xFF) << 16))
    if rest >= 2:
        h = i32(h ^ ((data[base + 1] & 0xFF) << 8))
    if rest >= 1:
        h = i32(h ^ (data[base] & 0xFF))
        h = i32(h * m)
    h = i32(h ^ ushr(h, 13))
    h = i32(h * m)
    h = i32(h ^ ushr(h, 15))
    return h


def java_partition(key: bytes, partitions: int) -> int:
    """``Utils.toPositive(Utils.murmur2(key)) % numPartitions``, the Java default partitioner."""
    return (java_murmur2(key) & 0x7FFFFFFF) % partitions


def broker_committed(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offsets as the broker reports them (OffsetFetch)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    from flows.kafka.clients import admin_client

    admin = admin_client(bootstrap)  # held: its futures never resolve once it is gone
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)], request_timeout=10)
    answer = futures[group_id].result(timeout=15)
    return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.topic == topic and tp.offset >= 0}


class FakeRecord:
    """A consumed record or a delivery report as confluent-kafka hands it over, for unit tests."""

    def __init__(self, value: bytes, partition: int, offset: int) -> None:
        self._value, self._partition, self._offset = value, partition, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset
