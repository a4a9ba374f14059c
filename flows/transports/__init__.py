"""Brokers by protocol, resolved through one table and built lazily from settings.

``get_broker("kafka")`` returns the process-wide Kafka broker for the configured mode;
nothing here imports a broker client until a broker is asked to connect.
"""

from __future__ import annotations

import threading
from importlib import import_module
from typing import Any

from .base import Broker, BrokerUnavailable

# protocol → (class path, setting holding the external URL)
BROKERS: dict[str, tuple[str, str]] = {
    "kafka": ("flows.transports.kafka:KafkaBroker", "KAFKA_BOOTSTRAP_SERVERS"),
    "amqp": ("flows.transports.amqp:AmqpBroker", "AMQP_URL"),
    "mqtt": ("flows.transports.mqtt:MqttBroker", "MQTT_URL"),
    "redis": ("flows.transports.redis:RedisLayer", "REDIS_URL"),
}

_brokers: dict[str, Broker] = {}
_lock = threading.Lock()

__all__ = ["BROKERS", "Broker", "BrokerUnavailable", "get_broker", "health", "describe_all", "reset", "mode_for"]


def mode_for(protocol: str) -> str:
    from django.conf import settings

    if protocol == "redis":
        return "external" if settings.CHANNEL_LAYER == "redis" else "embedded"
    overrides = getattr(settings, "FLOWS_BROKER_MODES", {}) or {}
    return overrides.get(protocol, settings.FLOWS_BROKERS)


def get_broker(protocol: str) -> Broker:
    from django.conf import settings

    with _lock:
        broker = _brokers.get(protocol)
        if broker is None:
            path, url_setting = BROKERS[protocol]
            module_name, _, attr = path.partition(":")
            cls = getattr(import_module(module_name), attr)
            broker = cls(mode_for(protocol), getattr(settings, url_setting))
            _brokers[protocol] = broker
        return broker


def describe_all() -> dict[str, dict[str, Any]]:
    return {protocol: get_broker(protocol).describe() for protocol in BROKERS}


def health(timeout: float = 2.0) -> dict[str, dict[str, Any]]:
    """Each broker's reachability, checked in parallel so one dead broker costs ``timeout`` once."""
    results: dict[str, dict[str, Any]] = {}

    def check(protocol: str) -> None:
        results[protocol] = get_broker(protocol).health(timeout)

    threads = [threading.Thread(target=check, args=(p,), daemon=True) for p in BROKERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 1.0)
    for protocol in BROKERS:
        results.setdefault(protocol, {**get_broker(protocol).describe(), "ok": False, "error": "health check timed out"})
    return {p: results[p] for p in BROKERS}


def reset() -> None:
    """Stop and forget every broker (settings changed, or the process is exiting)."""
    with _lock:
        brokers = list(_brokers.values())
        _brokers.clear()
    for broker in brokers:
        broker.stop()
