"""Broker status: embedded Kafka is started by the app; a dead broker is reported within seconds."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from flows import transports

from .polling import poll

pytestmark = pytest.mark.django_db(transaction=True)


def test_embedded_kafka_is_started_by_the_app_and_shown(broker_mode):
    broker = broker_mode("kafka", "embedded")
    client = Client()

    def answered() -> dict | None:
        kafka = client.get("/api/health/").json()["brokers"]["kafka"]
        if not kafka["ok"]:
            assert "starting" in kafka["error"]
        return kafka if kafka["ok"] else None

    kafka = poll(answered, 15, "embedded Kafka to answer", step=0.1)
    assert kafka["ok"], kafka
    assert kafka["mode"] == "embedded" and "Tansu" in kafka["name"]
    assert kafka["url"].startswith("127.0.0.1:") and kafka["url"] == broker.bootstrap_servers
    # How fast Tansu starts is measured, not bounded (a loaded machine stretches it; make bench reports it).
    assert broker.startup_seconds is not None
    print(f"embedded Tansu started in {broker.startup_seconds:.2f} s")
    transports.reset()
    assert not broker._tansu.running


@pytest.mark.parametrize("protocol, url", [
    ("amqp", "amqp://guest:guest@127.0.0.1:1//"),
    ("kafka", "127.0.0.1:1"),
    ("mqtt", "mqtt://127.0.0.1:1"),
    ("redis", "redis://127.0.0.1:1/0"),
])
def test_unreachable_external_broker_is_reported_quickly(broker_mode, settings, protocol, url):
    if protocol == "redis":
        settings.CHANNEL_LAYER = "redis"
    broker = broker_mode(protocol, "external", url)
    started = time.monotonic()
    info = broker.health(timeout=2)
    # Bounded by the check's own 2 s timeout; the rest is room for a loaded 2-core machine.
    # What this rules out is waiting for the operating system's TCP timeout (minutes).
    assert time.monotonic() - started < 10
    assert info["ok"] is False and info["mode"] == "external"
    assert "127.0.0.1" in info["error"] and "not reachable" in info["error"]


def test_reachable_external_brokers_are_ok(broker_mode, rabbitmq_url, mosquitto_url, redis_url, settings, tansu):
    settings.CHANNEL_LAYER = "redis"
    for protocol, url in (("amqp", rabbitmq_url), ("mqtt", mosquitto_url), ("redis", redis_url),
                          ("kafka", tansu.bootstrap_servers)):
        info = broker_mode(protocol, "external", url).health(timeout=3)
        assert info["ok"], info
        assert "guest:guest" not in info["url"], "credentials must not be shown"
