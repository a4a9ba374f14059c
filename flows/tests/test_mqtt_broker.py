"""The embedded amqtt broker: started in this process on a free port, stopped cleanly."""

from __future__ import annotations

import socket

import pytest

from flows.transports import BrokerUnavailable


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_embedded_broker_starts_on_a_free_port_and_stops(broker_mode):
    broker = broker_mode("mqtt", "embedded")
    assert broker.describe()["flavour"] == "amqtt"
    broker.start()
    host, port = broker.host, broker.port
    assert port not in (0, 1883)
    assert broker.url == f"mqtt://{host}:{port}"
    assert broker.health(2.0)["ok"] is True
    broker.stop()
    assert not listening(host, port)


def test_external_broker_reports_where_it_is(broker_mode, mosquitto_url):
    broker = broker_mode("mqtt", "external", mosquitto_url)
    assert broker.describe() == {"name": "Mosquitto", "url": mosquitto_url, "mode": "external", "flavour": "mosquitto"}
    broker.check(2.0)


def test_an_unreachable_external_broker_says_so(broker_mode):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    broker = broker_mode("mqtt", "external", f"mqtt://127.0.0.1:{free_port}")
    with pytest.raises(BrokerUnavailable, match=str(free_port)):
        broker.check(1.0)
