"""AMQP: RabbitMQ at ``AMQP_URL`` (external) or kombu's in-process ``memory://`` (embedded)."""

from __future__ import annotations

from .base import Broker, BrokerUnavailable

EMBEDDED_URL = "memory://"


class AmqpBroker(Broker):
    protocol = "amqp"
    embedded_name = "kombu memory transport (in-process)"
    external_name = "RabbitMQ"

    @property
    def url(self) -> str:
        return EMBEDDED_URL if self.embedded else self.external_url

    def display_url(self) -> str:
        from kombu.utils.url import maybe_sanitize_url

        return maybe_sanitize_url(self.url)

    def describe(self) -> dict:
        info = super().describe()
        info["url"] = self.display_url()
        return info

    def check(self, timeout: float = 3.0) -> None:
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=timeout) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - amqp raises many types
            raise BrokerUnavailable(f"{self.name} at {self.display_url()} is not reachable: {exc}") from None
