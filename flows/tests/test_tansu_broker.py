"""The embedded Tansu broker starts, answers Kafka clients, carries messages and stops cleanly.

Every wait is a poll against a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.transports.tansu import TansuBroker

# Tansu holds a JoinGroup for session.timeout.ms / 2: librdkafka's default 45 s would make
# every group join take ~23 s, so group consumers here use 6 s (a ~3 s join).
GROUP_CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "auto.offset.reset": "earliest"}


def _signals_reach(send: Callable[[int, int], None], ident: int) -> bool:
    """Whether a process (``os.kill``) or process group (``os.killpg``) is still there, zombies included."""
    try:
        send(ident, 0)
    except ProcessLookupError:
        return False
    return True


def test_find_binary_points_at_an_executable() -> None:
    path = TansuBroker.find_binary()
    assert Path(path).name.startswith("tansu")
    assert os.access(path, os.X_OK)


def test_start_is_reachable_and_stop_leaves_nothing_behind() -> None:
    from confluent_kafka.admin import AdminClient

    tansu = TansuBroker()
    tansu.start()
    try:
        assert tansu.running
        assert tansu.startup_seconds is not None and tansu.startup_seconds > 0
        host, port = tansu.bootstrap_servers.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) == tansu.port

        metadata = AdminClient({"bootstrap.servers": tansu.bootstrap_servers}).list_topics(timeout=5)
        assert metadata.cluster_id == tansu.cluster_id
        # advertised listener == listener, so clients reconnect to the same loopback port
        assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", tansu.port)]

        proc = tansu._proc
        assert proc is not None
        pid, workdir = proc.pid, tansu.log_path.parent  # type: ignore[union-attr]
        assert workdir.is_dir()
        tansu.start()  # idempotent: same process, no new one
        assert tansu._proc is proc
    finally:
        tansu.stop()

    assert not tansu.running
    assert not _signals_reach(os.kill, pid)
    assert not _signals_reach(os.killpg, pid)  # its own process group (pgid == pid) is empty too
    assert not workdir.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
    tansu.stop()  # idempotent


def test_failed_start_raises_with_log_and_cleans_up() -> None:
    tansu = TansuBroker(binary="/bin/false")
    with pytest.raises(RuntimeError, match="failed to start"):
        tansu.start(timeout=5)
    assert not tansu.running
    assert tansu.log_path is None  # temp dir removed


def test_produce_and_consume(tansu: TansuBroker) -> None:
    """On the session's embedded broker (conftest's ``tansu`` fixture)."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": tansu.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)

    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
    delivered: list[tuple[bytes, int]] = []
    producer = Producer({"bootstrap.servers": tansu.bootstrap_servers, "partitioner": "murmur2_random"})
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: delivered.append((msg.key(), msg.partition())))
    assert producer.flush(10) == 0
    assert len(delivered) == len(sent)

    consumer = Consumer({"bootstrap.servers": tansu.bootstrap_servers, "group.id": f"g-{topic}", **GROUP_CONSUMER})
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    partitions: dict[bytes, int] = {}
    deadline = time.monotonic() + 30
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            received[msg.key()] = msg.value()
            partitions[msg.key()] = msg.partition()
    finally:
        consumer.close()

    assert received == sent
    assert partitions == dict(delivered)
    assert len(set(partitions.values())) > 1  # keys spread over the partitions


def test_a_crash_is_reported_at_once_and_a_stop_is_not() -> None:
    import signal
    import threading

    heard: list[str] = []
    crashed = threading.Event()
    tansu = TansuBroker()
    tansu.on_exit = lambda how: (heard.append(how), crashed.set())
    tansu.start()
    try:
        pid = tansu.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert crashed.wait(5), "the broker's exit went unnoticed"
        assert heard == ["exited with signal 9 (SIGKILL)"] and not tansu.running
        tansu.start()  # back, on a new process
        assert tansu.running and tansu.pid != pid
    finally:
        tansu.stop()
    assert heard == ["exited with signal 9 (SIGKILL)"], "stop() is not a crash"
