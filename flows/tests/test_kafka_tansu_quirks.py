"""Pins down where the embedded Tansu broker answers differently from Apache Kafka.

The Kafka workflows are written around these quirks (end offsets from the fetch side,
membership from the clients' callbacks, a short ``fetch.wait.max.ms``). Each test asserts
the quirk as it is today, so it fails — and tells us to revisit the workaround — when a
new Tansu build fixes it. They talk to the session's Tansu broker directly, without Django.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid

import pytest

pytestmark = pytest.mark.timeout(60)

SESSION = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def _topic(bootstrap: str, partitions: int = 1) -> str:
    from flows.kafka.clients import create_topic

    name = f"quirks.{uuid.uuid4().hex[:10]}"
    create_topic(bootstrap, name, partitions)
    return name


def _produce_one_batch(bootstrap: str, topic: str, records: int) -> None:
    """``records`` records in a single record batch (one partition, one linger window)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 200, "batch.num.messages": 10_000})
    for i in range(records):
        producer.produce(topic, f"v{i}".encode(), partition=0)
    assert producer.flush(10) == 0


def _consume_all(bootstrap: str, topic: str, records: int):  # returns a live Consumer
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}.reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    deadline = time.monotonic() + 15
    while got < records and time.monotonic() < deadline:
        got += sum(1 for m in consumer.consume(num_messages=1000, timeout=0.2) if m.error() is None)
    assert got == records
    return consumer


def test_list_offsets_latest_reports_last_batch_base_plus_one(tansu) -> None:
    """ListOffsets(latest) is off by the last batch's size - 1; the fetch side is right."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    from flows.kafka.clients import admin_client
    from flows.kafka.offsets import cached_end_offset, fetch_end_offsets

    bootstrap, records = tansu.bootstrap_servers, 10
    topic = _topic(bootstrap)
    _produce_one_batch(bootstrap, topic, records)

    consumer = _consume_all(bootstrap, topic, records)
    try:
        tp = TopicPartition(topic, 0)
        assert cached_end_offset(consumer, topic, 0) == records  # the fetch response's high watermark
        # The quirk: Kafka would answer 10 (the log end offset); Tansu answers base offset 0 + 1.
        assert consumer.get_watermark_offsets(tp, timeout=5, cached=False) == (0, 1)
    finally:
        consumer.close()
    admin = admin_client(bootstrap)  # held: its futures never resolve once it is gone
    futures = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest()}, request_timeout=5)
    assert futures[TopicPartition(topic, 0)].result(timeout=10).offset == 1
    # What the workflows use instead agrees with the records actually stored.
    assert fetch_end_offsets(bootstrap, topic, 1) == {0: records}


def test_describe_consumer_groups_lists_no_members(tansu) -> None:
    """A member that the assign callback shows owning partitions is missing from DescribeGroups."""
    from confluent_kafka import Consumer

    from flows.kafka.clients import admin_client

    bootstrap = tansu.bootstrap_servers
    topic = _topic(bootstrap, partitions=2)
    group = f"{topic}.group"
    assigned: list[int] = []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **SESSION})
    started = time.monotonic()
    consumer.subscribe([topic], on_assign=lambda c, parts: assigned.extend(p.partition for p in parts))
    try:
        while not assigned and time.monotonic() - started < 20:
            consumer.poll(0.1)
        joined_after = time.monotonic() - started
        assert sorted(assigned) == [0, 1]
        # Tansu holds a JoinGroup for half the session timeout (6 s → ~3 s); Kafka answers at
        # once. Only the lower bound is the quirk: a loaded machine can only make it longer.
        print(f"JoinGroup answered after {joined_after:.2f} s")
        assert joined_after >= 2.0, joined_after

        admin = admin_client(bootstrap)  # held: its futures never resolve once it is gone
        described = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
        assert described.members == []  # Kafka would list the one member with partitions [0, 1]
    finally:
        consumer.close()


def test_a_waiting_fetch_is_not_answered_when_records_arrive(tansu) -> None:
    """Kafka answers a waiting fetch as soon as a record arrives; Tansu answers it at a later check.

    On Kafka a record produced while the consumer's fetch waits at the broker arrives within
    a few milliseconds. Tansu looks for new records only now and then during the wait (the
    first look about half of ``fetch.wait.max.ms`` in), so records arriving at arbitrary
    moments wait up to that first look. Hence the workflows' 20 ms max wait.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    bootstrap, max_wait_ms = tansu.bootstrap_servers, 1000
    topic = _topic(bootstrap)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}.reader", "fetch.wait.max.ms": max_wait_ms})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def one_way() -> float:
        sent = time.perf_counter()
        producer.produce(topic, b"ping", partition=0)
        assert producer.flush(5) == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = consumer.poll(0.002)
            if message is not None and message.error() is None:
                return time.perf_counter() - sent
        raise AssertionError("the record never arrived")

    try:
        one_way()  # the consumer's start-up
        latencies = []
        for pause_ms in (130, 370, 50, 290, 210, 450, 10, 330):  # spread over the fetch's wait
            time.sleep(pause_ms / 1000)  # the phase at which the record meets the waiting fetch
            latencies.append(one_way())
    finally:
        consumer.close()
    # Kafka: a few ms each (mean well under 10 ms). Tansu: ~500 ms minus the pause (mean ~300 ms).
    assert statistics.mean(latencies) >= 0.1, latencies


def _join(bootstrap: str, topic: str, group: str):  # returns a live Consumer
    from confluent_kafka import Consumer

    assigned: list[int] = []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **SESSION})
    consumer.subscribe([topic], on_assign=lambda c, parts: assigned.extend(p.partition for p in parts))
    deadline = time.monotonic() + 20
    while not assigned and time.monotonic() < deadline:
        consumer.poll(0.1)
    assert assigned, "the member never got its partition"
    return consumer


def _groups(admin) -> set[str]:
    return {g.group_id for g in admin.list_consumer_groups(request_timeout=5).result(timeout=10).valid}


def test_deleting_a_group_with_a_live_member_succeeds(tansu) -> None:
    """Kafka refuses to delete a group that has members (NON_EMPTY_GROUP); Tansu deletes it.

    (And Kafka lists a group in ListGroups as soon as it has a member; Tansu only once it committed.)

    So on Kafka a run's teardown deletes its groups only after every member has left
    (``flows.kafka.clients.delete_groups`` retries that answer); on Tansu order does not matter.
    """
    from confluent_kafka import TopicPartition

    from flows.kafka.clients import admin_client

    bootstrap = tansu.bootstrap_servers
    topic = _topic(bootstrap)
    group = f"{topic}.group"
    consumer = _join(bootstrap, topic, group)
    admin = admin_client(bootstrap)  # held: its futures never resolve once it is gone
    try:
        # Another difference: Tansu's ListGroups shows a group only once it has committed.
        assert group not in _groups(admin)
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        assert group in _groups(admin)
        assert admin.delete_consumer_groups([group], request_timeout=5)[group].result(timeout=10) is None
        assert group not in _groups(admin)
    finally:
        consumer.close()


def test_deleting_an_unknown_group_succeeds(tansu) -> None:
    """Kafka answers GROUP_ID_NOT_FOUND; Tansu answers success (teardown accepts both)."""
    from flows.kafka.clients import admin_client, delete_groups

    bootstrap = tansu.bootstrap_servers
    group = f"quirks.nosuch.{uuid.uuid4().hex[:10]}"
    admin = admin_client(bootstrap)  # held, as above
    assert admin.delete_consumer_groups([group], request_timeout=5)[group].result(timeout=10) is None
    delete_groups(bootstrap, [group])  # and the product's helper takes either answer


class _JoinSeen(logging.Handler):
    """Set once the client logs a JoinGroup that carries its member id: the one the broker holds."""

    def __init__(self, group: str) -> None:
        super().__init__()
        self.group, self.seen = group, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if f'Joining group "{self.group}"' in text and 'member id ""' not in text:
            self.seen.set()


def test_a_join_held_while_a_member_leaves_is_not_completed_by_the_leave(tansu) -> None:
    """Kafka completes a pending join once the members it waits on have left; Tansu keeps it waiting.

    A newcomer's JoinGroup opens a rebalance that waits for the group's members to join again.
    On Kafka a member that leaves instead (LeaveGroup, as ``close()`` sends) is dropped from
    that wait and the newcomer gets its partitions; on Tansu the newcomer got nothing in seven
    minutes of waiting. Hence a crashed member is replaced (or restarted) only once its consumer
    has closed (``flows/kafka/crew.py``): a newcomer that joins after the leave gets in.
    """
    from confluent_kafka import Consumer

    bootstrap = tansu.bootstrap_servers
    topic = _topic(bootstrap)
    group = f"{topic}.group"
    leaving = _join(bootstrap, topic, group)
    joins = _JoinSeen(group)
    log = logging.getLogger(f"quirks.{group}")
    log.addHandler(joins)
    log.setLevel(logging.DEBUG)
    assigned: list[int] = []
    newcomer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **SESSION, "debug": "cgrp", "logger": log})
    newcomer.subscribe([topic], on_assign=lambda c, parts: assigned.extend(p.partition for p in parts))
    try:
        deadline = time.monotonic() + 10
        while not joins.seen.is_set() and time.monotonic() < deadline:
            newcomer.poll(0.05)  # serves the client's log lines too
        assert joins.seen.is_set(), "the newcomer never sent its JoinGroup"
        leaving.close()  # LeaveGroup while the newcomer's JoinGroup is held
        # Kafka: assigned within moments of the leave. Tansu: five times its ~3 s join hold pass without.
        deadline = time.monotonic() + 15
        while not assigned and time.monotonic() < deadline:
            newcomer.poll(0.1)
        assert assigned == []
    finally:
        newcomer.close()
        log.removeHandler(joins)


def test_deleting_a_topic_gives_its_records_memory_back(tansu) -> None:
    """Tansu's memory storage holds every record until its topic is deleted; deleting frees it.

    Why every run deletes its topic: a 30 MB topic grows the broker's RSS by about 30 MB,
    and deleting it returns that at once. The bound is RSS, not time, so a busy machine
    cannot break it.
    """
    from confluent_kafka import Producer

    from flows.kafka.clients import delete_topics

    bootstrap, pid = tansu.bootstrap_servers, broker_pid(tansu)
    topic = _topic(bootstrap, partitions=2)
    before = rss_mb(pid)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for n in range(3000):  # 30 MB
        while True:
            try:
                producer.produce(topic, b"x" * 10_000, partition=n % 2)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(30) == 0
    holding = rss_mb(pid)
    assert holding - before >= 20, (before, holding)
    delete_topics(bootstrap, [topic])
    after = rss_mb(pid)
    assert holding - after >= 20, (before, holding, after)
    delete_topics(bootstrap, [topic])  # deleting it again is not an error for the product's helper


def broker_pid(tansu) -> int:
    pid = getattr(tansu, "pid", None)  # a TansuBroker that says its pid
    return pid if isinstance(pid, int) else tansu._proc.pid


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
