"""Choosing the embedded MQTT broker in tests: a real Mosquitto child, or the amqtt fallback."""

from __future__ import annotations

import os
import re
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"  # as conftest.py: in CI a missing service fails


def require_mosquitto_binary() -> str:
    """The mosquitto executable embedded MQTT will start; skip (laptop) or fail (CI) without one."""
    from flows.transports.mosquitto import find_binary

    binary = find_binary()
    if binary is None:
        message = f"no mosquitto binary on PATH (MOSQUITTO_BIN={os.environ.get('MOSQUITTO_BIN')!r})"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    return binary


def use_embedded_mosquitto(broker_mode, monkeypatch):  # pytest fixtures
    monkeypatch.delenv("MOSQUITTO_BIN", raising=False)
    require_mosquitto_binary()
    broker = broker_mode("mqtt", "embedded")
    assert broker.impl == "mosquitto"
    return broker


def use_embedded_amqtt(broker_mode, monkeypatch):
    monkeypatch.setenv("MOSQUITTO_BIN", "")  # empty: no binary, so the fallback
    broker = broker_mode("mqtt", "embedded")
    assert broker.impl == "amqtt"
    return broker


def filter_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 §4.7 as a regular expression: independent of flows.mqtt.topic_match."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic_filter.split("/")
    tail = levels[-1] == "#"
    head = levels[:-1] if tail else levels
    pattern = "/".join("[^/]*" if level == "+" else re.escape(level) for level in head)
    if tail:
        pattern = f"{pattern}(/.*)?" if head else ".*"
    return re.fullmatch(pattern, topic) is not None


def primed_snapshot(sys_counters, broker):
    """A $SYS snapshot in which both PUBLISH counters have been published at least once."""
    from flows.mqtt.clients import Connection

    before = sys_counters.snapshot()
    if before.received is None or before.sent is None:
        # Mosquitto publishes a counter only once it changed: make both change once.
        primer = Connection(f"primer-{time.monotonic_ns() % 10**9}", broker.host, broker.port, True)
        primer.connect()
        primer.subscribe("flows/primer", 1)
        primer.client.publish("flows/primer", b"x", qos=1).wait_for_publish(5)
        primer.close()
        before = sys_counters.snapshot()
    return before
