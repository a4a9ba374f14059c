"""MQTT: Mosquitto at ``MQTT_URL`` (external) or an amqtt broker in this process (embedded).

Flow code only asks for ``host`` and ``port`` (and ``flavour`` where the two brokers name
things differently, e.g. their ``$SYS`` counters); the embedded broker is started by
``start()`` on a free loopback port and stopped by ``stop()``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from .base import Broker, BrokerUnavailable, tcp_check


class MqttBroker(Broker):
    protocol = "mqtt"
    embedded_name = "amqtt (in-process)"
    external_name = "Mosquitto"
    default_port = 1883

    def __init__(self, mode: str, external_url: str) -> None:
        super().__init__(mode, external_url)
        self._amqtt: Any = None

    @property
    def flavour(self) -> str:
        """Which broker implementation answers: ``amqtt`` or ``mosquitto``."""
        return "amqtt" if self.embedded else "mosquitto"

    @property
    def url(self) -> str:
        if not self.embedded:
            return self.external_url
        if self._amqtt is not None and self._amqtt.running:
            return self._amqtt.url
        return "mqtt://127.0.0.1 (free port, not started)"

    @property
    def host(self) -> str:
        return self._address()[0]

    @property
    def port(self) -> int:
        return self._address()[1]

    def _address(self) -> tuple[str, int]:
        if self.embedded:
            self.start()
            return self._amqtt.host, self._amqtt.port
        parsed = urlparse(self.external_url if "://" in self.external_url else f"mqtt://{self.external_url}")
        return parsed.hostname or "127.0.0.1", parsed.port or self.default_port

    def start(self) -> None:
        if not self.embedded:
            return
        with self._start_lock:
            if self._amqtt is not None and self._amqtt.running:
                return
            from flows.mqtt.embedded import EmbeddedAmqtt

            self._amqtt = EmbeddedAmqtt()
            try:
                self._amqtt.start()
            except Exception as exc:
                self._amqtt = None
                raise BrokerUnavailable(f"embedded amqtt broker failed to start: {exc}") from exc

    def stop(self) -> None:
        with self._start_lock:
            amqtt, self._amqtt = self._amqtt, None
        if amqtt is not None:
            amqtt.stop()

    def check(self, timeout: float = 3.0) -> None:
        if self.embedded:
            # amqtt starts in well under a second, so health can simply start it.
            self.start()
            if not self._amqtt.serving():
                raise BrokerUnavailable(f"embedded amqtt broker at {self.url} is not listening")
            return
        host, port = self._address()
        tcp_check(f"mqtt://{host}:{port}", self.default_port, timeout, self.name)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["flavour"] = self.flavour
        return info
