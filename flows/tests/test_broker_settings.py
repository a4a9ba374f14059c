"""Broker settings: the URL says the mode, FLOWS_BROKERS fills in the rest, checks refuse nonsense.

Reading what a broker is (its mode, URL, name, ``impl``) never starts it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import override_settings

from dashboard.settings import BASE_DIR
from flows import transports
from flows.checks import check_brokers
from flows.transports.base import mode_of

URL_SETTINGS = ("AMQP_URL", "KAFKA_BOOTSTRAP_SERVERS", "MQTT_URL", "REDIS_URL", "CHANNEL_LAYERS")


def settings_under(**env: str) -> dict:
    """The broker settings a fresh process computes from ``env`` alone."""
    clean = {k: v for k, v in os.environ.items()
             if k not in {"FLOWS_BROKERS", "FLOWS_BROKER_MODES", "CHANNEL_LAYER", *URL_SETTINGS}}
    code = (f"import json, dashboard.settings as s; print(json.dumps({{n: getattr(s, n) for n in {URL_SETTINGS!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=BASE_DIR, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    values = json.loads(out)
    values["layer"] = values.pop("CHANNEL_LAYERS")["default"]["BACKEND"].rsplit(".", 1)[-1]
    return values


@pytest.mark.parametrize("url, mode", [
    ("embedded", "embedded"), ("memory://", "embedded"), (" Embedded ", "embedded"),
    ("amqp://guest:guest@127.0.0.1:5672//", "external"), ("127.0.0.1:9092", "external"),
    ("mqtt://127.0.0.1:1883", "external"), ("redis://127.0.0.1:6379/0", "external"),
])
def test_the_url_says_the_mode(url, mode):
    assert mode_of(url) == mode


def test_embedded_is_the_default_and_the_channel_layer_is_in_memory():
    assert settings_under() == {"AMQP_URL": "memory://", "KAFKA_BOOTSTRAP_SERVERS": "embedded",
                                "MQTT_URL": "embedded", "REDIS_URL": "memory://", "layer": "InMemoryChannelLayer"}


def test_flows_brokers_external_picks_the_urls_not_set():
    got = settings_under(FLOWS_BROKERS="external", KAFKA_BOOTSTRAP_SERVERS="embedded")
    assert got == {"AMQP_URL": "amqp://guest:guest@127.0.0.1:5672//", "KAFKA_BOOTSTRAP_SERVERS": "embedded",
                   "MQTT_URL": "mqtt://127.0.0.1:1883", "REDIS_URL": "memory://", "layer": "InMemoryChannelLayer"}


def test_a_url_that_is_set_wins_over_the_switch():
    got = settings_under(AMQP_URL="amqp://u:p@rabbit:5672//", REDIS_URL="redis://cache:6379/1")
    assert got["AMQP_URL"] == "amqp://u:p@rabbit:5672//" and got["KAFKA_BOOTSTRAP_SERVERS"] == "embedded"
    assert got["REDIS_URL"] == "redis://cache:6379/1" and got["layer"] == "RedisChannelLayer"


def test_the_older_spellings_still_work():
    got = settings_under(FLOWS_BROKERS="external", FLOWS_BROKER_MODES="kafka=embedded,amqp=external",
                         KAFKA_BOOTSTRAP_SERVERS="kafka:9092", CHANNEL_LAYER="redis")
    assert got["KAFKA_BOOTSTRAP_SERVERS"] == "embedded", "an explicit embedded wins over a URL, as before"
    assert got["AMQP_URL"].startswith("amqp://") and got["MQTT_URL"] == "mqtt://127.0.0.1:1883"
    assert got["REDIS_URL"] == "redis://127.0.0.1:6379/0" and got["layer"] == "RedisChannelLayer"
    assert settings_under(CHANNEL_LAYER="memory", REDIS_URL="redis://cache:6379/0")["layer"] == "InMemoryChannelLayer"


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def test_good_settings_pass_the_checks():
    assert check_brokers() == []
    with override_settings(AMQP_URL="amqps://u:p@rabbit:5671/vhost", KAFKA_BOOTSTRAP_SERVERS="k1:9092, k2:9093",
                           MQTT_URL="127.0.0.1:1883", REDIS_URL="unix:///run/redis.sock", FLOWS_BROKERS="external"):
        assert check_brokers() == []


@pytest.mark.parametrize("setting, url, needle", [
    ("AMQP_URL", "http://rabbit:5672//", "scheme http://"),
    ("AMQP_URL", "rabbit:5672", "no scheme"),
    ("KAFKA_BOOTSTRAP_SERVERS", "kafka://k:9092", "scheme kafka://"),
    ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:nine", "not a number"),
    ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,", "no address"),
    ("MQTT_URL", "mqtt://:1883", "no host"),
    ("MQTT_URL", "mqtt://broker:99999", "not a number"),
    ("REDIS_URL", "memcached://cache:11211", "scheme memcached://"),
])
def test_a_url_the_broker_cannot_use_is_an_error(setting, url, needle):
    with override_settings(**{setting: url}):
        messages = check_brokers()
    assert ids(messages) == ["flows.E002"]
    assert setting in messages[0].msg and needle in messages[0].msg, messages[0].msg
    assert setting in messages[0].hint


def test_an_unknown_switch_and_bad_legacy_modes_are_errors():
    with override_settings(FLOWS_BROKERS="extrnal"):
        assert ids(check_brokers()) == ["flows.E001"]
    with override_settings(FLOWS_BROKER_MODES={"kafka": "remote", "rabbit": "external"}):
        assert ids(check_brokers()) == ["flows.E003", "flows.E003", "flows.W001"]
    with override_settings(FLOWS_BROKER_MODES={"kafka": "external"}):
        assert ids(check_brokers()) == ["flows.W001"], "deprecated, still honoured"


def test_manage_py_check_reports_a_bad_url_at_startup():
    env = {**os.environ, "MQTT_URL": "mqtt://broker:port"}
    result = subprocess.run([sys.executable, "manage.py", "check"], env=env, cwd=BASE_DIR, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "flows.E002" in result.stderr and "MQTT_URL" in result.stderr, result.stderr


@pytest.mark.parametrize("protocol", list(transports.BROKERS))
def test_reading_an_embedded_broker_never_starts_it(broker_mode, monkeypatch, protocol):
    broker = broker_mode(protocol, "embedded")
    started = []
    monkeypatch.setattr(type(broker), "start", lambda self: started.append(self))
    monkeypatch.setattr(type(broker), "start_in_background", lambda self: started.append(self))
    described = {"mode": broker.mode, "name": broker.name, "url": broker.url, "embedded": broker.embedded,
                 "describe": transports.describe_all()[protocol]}
    for attribute in ("impl", "caveats", "pid", "startup_seconds"):
        if hasattr(type(broker), attribute):
            value = getattr(broker, attribute)
            described[attribute] = value() if callable(value) else value
    for attribute in ("bootstrap_servers", "host", "port"):
        if hasattr(type(broker), attribute):
            with pytest.raises(transports.BrokerUnavailable, match="not started"):
                getattr(broker, attribute)
    assert described["mode"] == "embedded" and described["describe"]["mode"] == "embedded"
    assert started == [], f"reading {protocol}'s broker started it"
