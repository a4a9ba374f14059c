"""Brokers that die are noticed: embedded children report their exit at once, runs on a dead
broker fail within seconds naming it, and broker children never outlive the server.

Every broker killed here is one this test started (an embedded child, or a private broker
posing as "external"); the shared services on the standard ports are never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.test import Client

from flows import eventstore, registry
from flows.runner import get_runner, wait_until_finished

from .mqtt_support import require_mosquitto_binary, use_embedded_mosquitto
from .process_support import TcpProxy, pid_alive, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
# The bar: a run on a broker that died is failed within this long.
FAIL_WITHIN_S = 10.0


def embedded(broker_mode, monkeypatch, protocol: str):
    if protocol == "mqtt":
        return use_embedded_mosquitto(broker_mode, monkeypatch)
    return broker_mode("kafka", "embedded")


def kill(pid: int) -> float:
    os.kill(pid, signal.SIGKILL)
    return time.monotonic()


# -- children die with the server -------------------------------------------------------------

SERVER = textwrap.dedent("""
    import sys, threading
    from flows.transports.mosquitto import MosquittoProcess, find_binary
    from flows.transports.tansu import TansuBroker

    brokers = [TansuBroker()]
    if find_binary():
        brokers.append(MosquittoProcess(find_binary()))
    for broker in brokers:
        # From a thread that ends at once, as a run's or a health check's thread does: the
        # kernel's parent-death signal follows the forking *thread*, so this must not kill them.
        starter = threading.Thread(target=broker.start)
        starter.start()
        starter.join()
    print(" ".join(str(b.pid) for b in brokers), flush=True)
    sys.stdin.read()
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_broker_children_die_with_a_server_killed_with_sigkill():
    if os.environ.get("CI", "").lower() == "true":
        require_mosquitto_binary()
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        line = server.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert pids, f"the server printed no broker pids (exit status {server.poll()})"
        assert all(pid_alive(pid) for pid in pids), "a broker died with the short-lived thread that started it"
        server.kill()  # SIGKILL: no atexit, no cleanup of any kind
        server.wait(10)
        took = wait_until(lambda: not any(pid_alive(pid) for pid in pids), 10, "the broker children to die")
        print(f"broker children gone {took:.3f} s after the server's SIGKILL")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


# -- an embedded broker's death is noticed at once ----------------------------------------------

@pytest.mark.parametrize(("protocol", "sentence"), [
    ("kafka", "embedded Kafka broker (Tansu) exited with signal 9"),
    ("mqtt", "embedded MQTT broker (Mosquitto) exited with signal 9"),
])
def test_a_killed_embedded_broker_is_down_in_health_until_restarted(broker_mode, monkeypatch, protocol, sentence):
    broker = embedded(broker_mode, monkeypatch, protocol)
    broker.start()
    heard: list[str] = []
    noticed = threading.Event()
    broker.add_down_listener(lambda reason: (heard.append(reason), noticed.set()))
    pid = broker.pid
    killed_at = kill(pid)
    assert noticed.wait(5), "the supervisor did not notice the exit"
    print(f"{protocol}: exit noticed {time.monotonic() - killed_at:.3f} s after SIGKILL")
    assert heard == [broker.down_reason()] and sentence in heard[0]

    info = Client().get("/api/health/").json()["brokers"][protocol]
    assert info["ok"] is False and sentence in info["error"], info
    print(f"{protocol}: /api/health/ said {info}")
    # Health's background start brings it back, on a new process.
    wait_until(lambda: Client().get("/api/health/").json()["brokers"][protocol]["ok"], 20, f"{protocol} to come back")
    assert broker.down_reason() is None and broker.pid not in (None, pid)


# -- what a dead broker cost ------------------------------------------------------------------

def test_undelivered_counts_confirmed_routed_messages_no_consumer_processed():
    from flows.broker_watch import undelivered_messages
    from flows.models import Run

    run = Run.objects.create(workflow="mqtt-qos")
    events = [
        ("publish", "producer", "k1", {"perceived_ms": 1.0}), ("route", "topic:t/p0", "k1", {}),
        ("process", "consumer:c", "k1", {}),  # confirmed, processed
        ("publish", "producer", "k2", {"perceived_ms": 1.0}), ("route", "topic:t/p1", "k2", {}),  # owed, lost
        ("publish", "publisher", "m1", {}), ("ack", "publisher", "m1", {}), ("route", "broker", "m1", {}),  # PUBACK
        ("ack", "subscriber:s", "m2", {}), ("publish", "publisher", "m2", {}),  # a consumer's ack confirms nothing
        ("publish", "publisher", "m3", {"perceived_ms": 0.0}),  # confirmed, but no consumer's filter matched
    ]
    eventstore.write_batch(run.pk, [(seq, float(seq), kind, actor, mid, 1, False, attrs)
                                    for seq, (kind, actor, mid, attrs) in enumerate(events, 1)])
    assert undelivered_messages(run.pk) == (2, 1, 5)  # k2 and m1 undelivered; m2 never confirmed


# -- a run on a broker that dies fails within seconds -----------------------------------------

# fidelity=full: the losses are counted message by message from the stored events, which a
# sampling run keeps for its traced messages only (that case has a test of its own below).
KAFKA_RUN = {"messages": 200_000, "rate": 2000, "partitions": 4, "keys": 8, "fidelity": "full"}
GROUPS_RUN = {"messages": 5000, "rate": 500, "process_ms": 0, "fidelity": "full"}
MQTT_RUN = {"messages": 5000, "rate": 200, "qos": 1, "retain": False, "disconnect": "", "disconnect_at": 0,
            "away_messages": 0, "lose_ack": False, "fidelity": "full"}
ROUTING_RUN = {"messages": 20000, "rate": 500, "work_ms": 0, "fidelity": "full"}


def run_until_processing(slug: str, params: dict, processed: int = 50) -> int:
    cleaned, errors = registry.get(slug).validate(params)
    assert not errors, errors
    run_id = get_runner().start(slug, cleaned).pk

    def busy() -> bool:
        summary = get_runner().summary(run_id)
        assert summary["state"] in ("pending", "running"), summary["error"]
        return summary["counts"]["processed"] >= processed

    wait_until(busy, 60, f"{slug} to process {processed} messages", step=0.05)
    return run_id


def assert_failed_on_broker(run_id: int, killed_at: float, *needles: str) -> dict:
    run = wait_until_finished(run_id, 60)
    took = time.monotonic() - killed_at
    print(f"run {run.workflow} {run.state} {took:.3f} s after the broker went away: {run.error}")
    assert run.state == "failed"
    assert took < FAIL_WITHIN_S, f"the run took {took:.1f} s to fail"
    for needle in needles:
        assert needle in run.error, run.error
    assert "TimeoutError" not in run.error
    summary = get_runner().summary(run_id)
    assert summary["counts"]["lost"] == run.result["undelivered"] == run.result["lost"]
    assert run.result["losses_of"] == "all"
    assert f"{run.result['undelivered']} message" in run.error and "confirmed by the broker" in run.error, \
        "every run here published before the broker died"
    return summary


def events_before(run_id: int) -> int:
    return len(eventstore.read_events(run_id, 0, 10**6))


@pytest.mark.parametrize(("protocol", "slug", "params", "needles"), [
    ("kafka", "kafka-partitions", KAFKA_RUN, ("embedded Kafka broker (Tansu)", "exited with signal 9")),
    ("kafka", "kafka-consumer-groups", GROUPS_RUN, ("embedded Kafka broker (Tansu)", "exited with signal 9")),
    ("mqtt", "mqtt-qos", MQTT_RUN, ("embedded MQTT broker (Mosquitto)", "exited with signal 9")),
])
def test_a_run_fails_within_seconds_when_its_embedded_broker_is_killed(broker_mode, monkeypatch, protocol, slug,
                                                                        params, needles):
    broker = embedded(broker_mode, monkeypatch, protocol)
    run_id = run_until_processing(slug, params)
    stored = events_before(run_id)
    killed_at = kill(broker.pid)
    summary = assert_failed_on_broker(run_id, killed_at, *needles)
    events = eventstore.read_events(run_id, 0, 10**6)
    assert len(events) >= stored and [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert summary["counts"]["processed"] > 0 and events[-1]["kind"] == "done"

    health = Client().get("/api/health/").json()["brokers"][protocol]
    assert health["ok"] is False and needles[0] in health["error"], health
    wait_until(lambda: Client().get("/api/health/").json()["brokers"][protocol]["ok"], 20, f"{protocol} to come back")


@pytest.fixture
def private_tansu():
    from flows.transports.tansu import TansuBroker

    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_mosquitto():
    from flows.transports.mosquitto import MosquittoProcess

    broker = MosquittoProcess(require_mosquitto_binary())
    broker.start()
    yield broker
    broker.stop()


def test_a_run_fails_within_seconds_when_its_external_kafka_goes_away(broker_mode, private_tansu):
    broker_mode("kafka", "external", private_tansu.bootstrap_servers)
    run_id = run_until_processing("kafka-partitions", KAFKA_RUN)
    killed_at = kill(private_tansu.pid)
    assert_failed_on_broker(run_id, killed_at, f"Apache Kafka at {private_tansu.bootstrap_servers} is not reachable")


def test_a_run_fails_within_seconds_when_its_external_mqtt_goes_away(broker_mode, private_mosquitto):
    broker_mode("mqtt", "external", private_mosquitto.url)
    run_id = run_until_processing("mqtt-qos", MQTT_RUN)
    killed_at = kill(private_mosquitto.pid)
    assert_failed_on_broker(run_id, killed_at, f"Mosquitto at 127.0.0.1:{private_mosquitto.port} is not reachable")


@pytest.mark.parametrize("fidelity", ["full", "sampled"])
def test_a_run_fails_within_seconds_when_its_external_rabbitmq_goes_away(broker_mode, rabbitmq_url, fidelity):
    proxy = TcpProxy(("127.0.0.1", 5672))  # the shared RabbitMQ stays up; only our way to it goes
    run_id = None
    try:
        broker_mode("amqp", "external", f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
        run_id = run_until_processing("amqp-routing", {**ROUTING_RUN, "fidelity": fidelity})
        proxy.close()
        killed_at = time.monotonic()
        needle = f"RabbitMQ at 127.0.0.1:{proxy.port} is not reachable"
        if fidelity == "full":
            assert_failed_on_broker(run_id, killed_at, needle)
        else:
            # Which messages were lost is known for the traced sample only, and the run says so.
            run = wait_until_finished(run_id, 60)
            assert run.state == "failed" and needle in run.error, run.error
            assert "the run was sampling (fidelity=sampled was asked for): losses are counted over its" in run.error
            assert run.result["losses_of"] == "traced"
    finally:
        proxy.close()
        if run_id is not None:
            delete_run_topology(run_id, rabbitmq_url)


def delete_run_topology(run_id: int, url: str) -> None:
    """The run could not clean up behind a vanished broker; its names would otherwise linger on
    the shared RabbitMQ until x-expires."""
    from kombu import Connection

    from flows.amqp import spec as routing
    from flows.amqp.resources import RunTopology
    from flows.models import Run

    run = Run.objects.get(pk=run_id)
    spec = routing.RoutingSpec(run.params)
    topology = RunTopology(run.namespace, spec.exchange, spec.exchange_type, spec.bindings)
    with Connection(url, connect_timeout=5) as conn:
        topology.delete(conn.default_channel)
