"""MQTT: Mosquitto at ``MQTT_URL`` (external), or an embedded broker the app starts itself.

Embedded MQTT prefers a real Mosquitto run as a child process (``flows.transports.mosquitto``)
whenever its binary is installed; only without one does it fall back to amqtt inside this
process, which breaks some MQTT 3.1.1 rules (``flows.mqtt.caveats``). ``impl`` says which one
answers — decided from the binary alone, so asking never starts a broker — and code that
depends on the broker's behaviour or names (``$SYS`` counters) keys on it, never on the mode.
Flow code otherwise only asks for ``host`` and ``port``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from .base import Broker, BrokerUnavailable, tcp_check

MOSQUITTO = "mosquitto"
AMQTT = "amqtt"


class MqttBroker(Broker):
    protocol = "mqtt"
    embedded_name = "Mosquitto (embedded, child process)"
    external_name = "Mosquitto"
    default_port = 1883
    url_schemes = ("mqtt", "tcp")
    bare_addresses = True

    def __init__(self, mode: str, external_url: str) -> None:
        super().__init__(mode, external_url)
        self._binary: str | None = None
        self._impl: str | None = None
        self._server: Any = None  # MosquittoProcess or EmbeddedAmqtt, once started

    # -- which broker ---------------------------------------------------------------------

    @property
    def impl(self) -> str:
        """``mosquitto`` or ``amqtt``: the implementation that answers (or will, once started)."""
        if not self.embedded:
            return MOSQUITTO
        if self._impl is None:
            from .mosquitto import find_binary

            self._binary = find_binary()
            self._impl = MOSQUITTO if self._binary else AMQTT
        return self._impl

    @property
    def flavour(self) -> str:
        """The older name of ``impl`` (``$SYS`` topic names, amqtt quirks)."""
        return self.impl

    @property
    def name(self) -> str:
        if self.embedded and self.impl == AMQTT:
            return "amqtt (in-process; no mosquitto binary found)"
        return super().name

    def caveats(self) -> list[str]:
        """The MQTT 3.1.1 rules the broker in use breaks (empty for Mosquitto)."""
        if self.impl != AMQTT:
            return []
        from flows.mqtt.caveats import AMQTT_CAVEATS

        return list(AMQTT_CAVEATS)

    def holds_connection(self, client_id: str) -> bool:
        """Whether the broker still counts ``client_id`` as connected after its socket dropped.

        Only amqtt lags (``EmbeddedAmqtt.holds_connection``); Mosquitto takes a reconnect over
        at once, so for it this is always false."""
        holds = getattr(self._server, "holds_connection", None)
        return bool(holds is not None and holds(client_id))

    # -- where ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.embedded:
            return self.external_url
        server = self._server
        if server is not None and server.running:
            return server.url
        return "mqtt://127.0.0.1 (free port, not started)"

    @property
    def host(self) -> str:
        return self._address()[0]

    @property
    def port(self) -> int:
        return self._address()[1]

    @property
    def startup_seconds(self) -> float | None:
        return getattr(self._server, "startup_seconds", None)

    def _address(self) -> tuple[str, int]:
        if self.embedded:
            server = self._server
            if server is None or not server.running:
                # Reading a property never starts (or silently restarts) a broker: start() does.
                raise BrokerUnavailable(self.down_reason() or f"embedded {self.impl} broker is not started")
            return server.host, server.port
        parsed = urlparse(self.external_url if "://" in self.external_url else f"mqtt://{self.external_url}")
        return parsed.hostname or "127.0.0.1", parsed.port or self.default_port

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if not self.embedded:
            return
        with self._start_lock:
            if self._server is not None and self._server.running:
                return
            if self.impl == MOSQUITTO:
                self._start_mosquitto()
            else:
                self._start_amqtt()
            self._came_up()

    def _start_mosquitto(self) -> None:
        from .mosquitto import MosquittoProcess

        if self._server is None:
            self._server = MosquittoProcess(self._binary or "mosquitto")
            self._server.on_exit = lambda how: self._went_down(f"embedded MQTT broker (Mosquitto) {how}")
        try:
            self._server.start()
        except Exception as exc:
            raise BrokerUnavailable(f"embedded Mosquitto broker failed to start: {exc}") from exc

    def _start_amqtt(self) -> None:
        from flows.mqtt.embedded import EmbeddedAmqtt

        self._server = EmbeddedAmqtt()
        try:
            self._server.start()
        except Exception as exc:
            self._server = None
            raise BrokerUnavailable(f"embedded amqtt broker failed to start: {exc}") from exc

    def stop(self) -> None:
        with self._start_lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def pid(self) -> int | None:
        """The embedded Mosquitto's process id while it runs (None for amqtt or external)."""
        return getattr(self._server, "pid", None)

    # -- reachability -------------------------------------------------------------------------

    def check(self, timeout: float = 3.0) -> None:
        if self.embedded:
            # Both embedded brokers start in well under a second, so health can simply start them.
            self.start()
            if self.impl == AMQTT:
                if not self._server.serving():
                    raise BrokerUnavailable(f"embedded amqtt broker at {self.url} is not listening")
                return
        host, port = self._address()
        tcp_check(f"mqtt://{host}:{port}", self.default_port, timeout, self.name)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["impl"] = self.impl
        info["flavour"] = self.impl
        info["caveats"] = self.caveats()
        return info
