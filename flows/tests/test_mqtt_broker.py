"""The embedded MQTT brokers: a real Mosquitto child process by default, amqtt only without one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from flows.transports import BrokerUnavailable
from flows.transports.base import port_open

from .mqtt_support import use_embedded_amqtt, use_embedded_mosquitto
from .process_support import pid_alive


def test_embedded_mosquitto_is_a_child_on_a_free_loopback_port(broker_mode, monkeypatch):
    broker = use_embedded_mosquitto(broker_mode, monkeypatch)
    described = broker.describe()
    assert described["impl"] == described["flavour"] == "mosquitto" and described["caveats"] == []
    assert broker._server is None, "deciding the impl or describing it must not start a broker"
    broker.start()
    host, port, pid = broker.host, broker.port, broker.pid
    assert host == "127.0.0.1" and port not in (0, 1883)
    assert broker.url == f"mqtt://127.0.0.1:{port}" and pid is not None and pid != os.getpid()
    conf = (Path(broker._server.log_path).parent / "mosquitto.conf").read_text()
    assert f"listener {port} 127.0.0.1\n" in conf  # loopback only
    assert "persistence false" in conf and "allow_anonymous true" in conf and "sys_interval 1" in conf
    assert broker.health(2.0)["ok"] is True
    broker.stop()
    assert not port_open(host, port, timeout=1)
    assert not pid_alive(pid)
    assert broker.down_reason() is None, "a broker we stopped did not die"


def test_amqtt_is_the_fallback_without_a_mosquitto_binary(broker_mode, monkeypatch, tmp_path):
    for missing in ("", str(tmp_path / "no-such-mosquitto")):
        monkeypatch.setenv("MOSQUITTO_BIN", missing)
        broker = broker_mode("mqtt", "embedded")
        assert broker.impl == "amqtt"
        described = broker.describe()
        assert described["flavour"] == "amqtt" and "amqtt" in described["name"]
        assert any("DUP" in c for c in described["caveats"])
        assert broker._server is None


def test_embedded_amqtt_starts_on_a_free_port_and_stops(broker_mode, monkeypatch):
    broker = use_embedded_amqtt(broker_mode, monkeypatch)
    broker.start()
    host, port = broker.host, broker.port
    assert port not in (0, 1883)
    assert broker.url == f"mqtt://{host}:{port}"
    assert broker.health(2.0)["ok"] is True
    broker.stop()
    assert not port_open(host, port, timeout=1)


def test_external_broker_reports_where_it_is(broker_mode, mosquitto_url):
    broker = broker_mode("mqtt", "external", mosquitto_url)
    assert broker.describe() == {"name": "Mosquitto", "url": mosquitto_url, "mode": "external", "impl": "mosquitto",
                                 "flavour": "mosquitto", "caveats": []}
    broker.check(2.0)


def test_an_unreachable_external_broker_says_so(broker_mode):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    broker = broker_mode("mqtt", "external", f"mqtt://127.0.0.1:{free_port}")
    with pytest.raises(BrokerUnavailable, match=str(free_port)):
        broker.check(1.0)


@pytest.mark.django_db
@pytest.mark.parametrize("impl", ["mosquitto", "amqtt"])
def test_health_and_the_workflow_contract_say_which_broker_answers(broker_mode, monkeypatch, impl):
    from django.test import Client

    use = use_embedded_mosquitto if impl == "mosquitto" else use_embedded_amqtt
    broker = use(broker_mode, monkeypatch)
    client = Client()
    workflows = {w["slug"]: w for w in client.get("/api/workflows/").json()}
    caveats = workflows["mqtt-qos"]["caveats"]
    assert broker._server is None, "listing workflows must not start a broker"
    # amqp-dead-letter's caveat is about AMQP (embedded here: it needs RabbitMQ), not MQTT.
    assert all(w["caveats"] == [] for slug, w in workflows.items() if slug not in ("mqtt-qos", "amqp-dead-letter"))
    page = client.get("/workflows/mqtt-qos/").content.decode()
    if impl == "amqtt":
        # Said before Start: the rules the fallback breaks, as the run page's card words them.
        assert len(caveats) == 4 and any("min(publish, subscription)" in c for c in caveats)
        assert any("DUP=1" in c for c in caveats) and any("filter does not match" in c for c in caveats)
        assert "min(publish, subscription)" in page  # in the contract the form renders
    else:
        assert caveats == []
    mqtt = client.get("/api/health/").json()["brokers"]["mqtt"]
    assert mqtt["impl"] == impl and mqtt["ok"] is True, mqtt
