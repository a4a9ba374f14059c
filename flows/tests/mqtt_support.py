"""Choosing the embedded MQTT broker in tests: a real Mosquitto child, or the amqtt fallback."""

from __future__ import annotations

import os

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
