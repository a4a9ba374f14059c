"""Brokers by protocol, resolved through one table and built lazily from settings.

``get_broker("kafka")`` returns the process-wide Kafka broker. Its URL setting says where
it is and so its mode, kombu-style: ``KAFKA_BOOTSTRAP_SERVERS=embedded`` (or
``memory://``) is the broker this app starts itself, anything else an external one
(``dashboard/settings.py`` fills in the URLs not set from ``FLOWS_BROKERS``). Nothing here
imports a broker client or starts a broker until a broker is asked to.

The ``_brokers`` table is one of the process-wide singletons ``FlowsConfig`` owns
(``flows/apps.py``): built on first use, stopped by ``reset()`` at exit.
"""

from __future__ import annotations

import threading
from importlib import import_module
from typing import Any

from .base import Broker, BrokerUnavailable, mode_of

# protocol → (class path, setting holding the external URL)
BROKERS: dict[str, tuple[str, str]] = {
    "kafka": ("flows.transports.kafka:KafkaBroker", "KAFKA_BOOTSTRAP_SERVERS"),
    "amqp": ("flows.transports.amqp:AmqpBroker", "AMQP_URL"),
    "mqtt": ("flows.transports.mqtt:MqttBroker", "MQTT_URL"),
    "redis": ("flows.transports.redis:RedisLayer", "REDIS_URL"),
}

_brokers: dict[str, Broker] = {}
_lock = threading.Lock()

__all__ = ["BROKERS", "Broker", "BrokerUnavailable", "broker_class", "describe_all", "get_broker", "health", "mode_for",
           "reset", "setting_for", "url_for"]


def url_for(protocol: str) -> str:
    """The protocol's URL setting as configured now."""
    from django.conf import settings

    return getattr(settings, BROKERS[protocol][1])


def mode_for(protocol: str) -> str:
    """``embedded`` or ``external``, read from the protocol's URL setting."""
    return mode_of(url_for(protocol))


def setting_for(protocol: str, mode: str, url: str | None = None) -> tuple[str, str]:
    """``(setting, value)`` that points ``protocol`` at ``mode``: ``url``, else that mode's default.

    For tests and benchmarks that switch a broker at run time (then ``reset()``).
    """
    from django.conf import settings

    if mode not in ("embedded", "external"):
        raise ValueError(f"broker mode must be embedded or external, not {mode!r}")
    setting = BROKERS[protocol][1]
    embedded, external = settings.BROKER_URL_DEFAULTS[setting]
    if mode == "embedded":
        return setting, embedded
    if url is None:
        current = getattr(settings, setting)
        url = external if mode_of(current) == "embedded" else current
    return setting, url


def broker_class(protocol: str) -> type[Broker]:
    module_name, _, attr = BROKERS[protocol][0].partition(":")
    return getattr(import_module(module_name), attr)


def get_broker(protocol: str) -> Broker:
    with _lock:
        broker = _brokers.get(protocol)
        if broker is None:
            url = url_for(protocol)
            broker = broker_class(protocol)(mode_of(url), url)
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
