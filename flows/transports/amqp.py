"""AMQP: RabbitMQ at ``AMQP_URL`` (external) or an in-process kombu ``memory://`` broker (embedded).

Flow code never builds connections itself: it asks the broker, so the same code runs on
both. Embedded connections use ``flows.amqp.memory`` (kombu's memory transport with
RabbitMQ's requeue-on-crash, topic ``#`` and ``mandatory`` behaviour; see that module);
external ones are py-amqp connections with publisher confirms when asked for.
"""

from __future__ import annotations

from typing import Any

from .base import Broker, BrokerUnavailable

EMBEDDED_URL = "memory://"
EMBEDDED_TRANSPORT = "flows.amqp.memory:Transport"
# The same in-process broker; a host name spares kombu's "no hostname supplied" warning.
EMBEDDED_CONNECT_URL = "memory://localhost//"
# How often an embedded consumer looks for work: the memory transport polls, RabbitMQ pushes.
EMBEDDED_POLL_S = 0.002
# Exchange types each mode can route (kombu's virtual transports have no headers exchange).
EMBEDDED_EXCHANGE_TYPES = ("direct", "topic", "fanout")
EXTERNAL_EXCHANGE_TYPES = ("direct", "topic", "fanout", "headers")


class AmqpBroker(Broker):
    protocol = "amqp"
    embedded_name = "kombu memory transport (in-process)"
    external_name = "RabbitMQ"
    default_port = 5672
    url_schemes = ("amqp", "amqps", "pyamqp")

    @property
    def url(self) -> str:
        return EMBEDDED_URL if self.embedded else self.external_url

    def display_url(self) -> str:
        from kombu.utils.url import maybe_sanitize_url

        return maybe_sanitize_url(self.url)

    def describe(self) -> dict:
        info = super().describe()
        info["url"] = self.display_url()
        info["exchange_types"] = list(self.exchange_types)
        return info

    @property
    def exchange_types(self) -> tuple[str, ...]:
        return EMBEDDED_EXCHANGE_TYPES if self.embedded else EXTERNAL_EXCHANGE_TYPES

    def connection(self, confirm: bool = False, connect_timeout: float = 5.0) -> Any:
        """A new, unconnected kombu Connection; ``confirm`` turns on publisher confirms.

        On RabbitMQ a confirmed ``publish`` returns once the broker has taken the message
        (and has already handed a ``mandatory`` message no queue wanted back to the
        producer's ``on_return``). The embedded broker stores synchronously, so every
        publish is confirmed when it returns.
        """
        from kombu import Connection

        if self.embedded:
            return Connection(EMBEDDED_CONNECT_URL, transport=EMBEDDED_TRANSPORT,
                              transport_options={"polling_interval": EMBEDDED_POLL_S})
        options = {"confirm_publish": True} if confirm else {}
        return Connection(self.external_url, connect_timeout=connect_timeout, heartbeat=0, transport_options=options)

    def celery_config(self) -> dict[str, Any]:
        """The broker half of a Celery app's configuration for this mode."""
        if self.embedded:
            return {
                "broker_url": EMBEDDED_CONNECT_URL,
                "broker_transport": EMBEDDED_TRANSPORT,
                "broker_transport_options": {"polling_interval": EMBEDDED_POLL_S},
            }
        return {"broker_url": self.external_url, "broker_transport_options": {"confirm_publish": True}}

    def check(self, timeout: float = 3.0) -> None:
        try:
            conn = self.connection(connect_timeout=timeout)
            with conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - amqp raises many types
            raise BrokerUnavailable(f"{self.name} at {self.display_url()} is not reachable: {exc}") from None
