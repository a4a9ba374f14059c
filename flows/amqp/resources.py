"""A run's own exchange and queues: named ``run<id>.<name>``, declared at start, deleted at the end.

Several runs (and several people) share one RabbitMQ, so every name carries the run id.
Queues also get ``x-expires``: if the process dies before it can delete them, RabbitMQ
removes them by itself once they have been unused that long, and the auto-delete exchange
goes with its last binding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .routing_rules import Binding, queue_names

log = logging.getLogger(__name__)

QUEUE_EXPIRES_MS = 30 * 60 * 1000


def delete_all(channel: Any, queues: Sequence[str], exchanges: Sequence[str]) -> None:
    """Delete a run's queues, then its exchanges, on RabbitMQ or the embedded broker; never raises.

    The one place every AMQP and Celery workflow deletes what it declared, from its
    ``finally``, so a failed or cancelled run cleans up like a successful one. What fails
    here is logged; on RabbitMQ ``x-expires`` removes it later.
    """
    for queue in queues:
        try:
            channel.queue_delete(queue=queue)
        except Exception:  # x-expires removes what cleanup misses
            log.warning("could not delete queue %s", queue, exc_info=True)
    for exchange in exchanges:
        try:
            channel.exchange_delete(exchange=exchange)
        except Exception:
            log.warning("could not delete exchange %s", exchange, exc_info=True)


def delete_and_release(topology: Any, admin: Any, *connections: Any) -> None:
    """Delete ``topology`` through ``admin`` (when both exist), then release every connection, whatever happens."""
    try:
        if topology is not None and admin is not None:
            topology.delete(admin.channel())
    finally:
        for conn in (*connections, admin):
            if conn is not None:
                conn.release()


class RunTopology:
    def __init__(self, namespace: str, exchange: str, exchange_type: str, bindings: Sequence[Binding]) -> None:
        from kombu import Exchange, Queue

        self.prefix = f"{namespace}."
        self.exchange_name = exchange
        self.exchange_type = exchange_type
        self.bindings = list(bindings)
        self.exchange = Exchange(self.prefix + exchange, type=exchange_type, durable=False, auto_delete=True,
                                 delivery_mode=1)
        self.queues: dict[str, Any] = {
            name: Queue(self.prefix + name, durable=False, auto_delete=False,
                        queue_arguments={"x-expires": QUEUE_EXPIRES_MS})
            for name in queue_names(self.bindings)
        }

    def declare(self, channel: Any) -> None:
        self.exchange(channel).declare()
        for queue in self.queues.values():
            queue(channel).declare()
        for b in self.bindings:
            self.queues[b.queue](channel).bind_to(self.exchange, routing_key=b.key,
                                                   arguments=b.arguments(self.exchange_type))

    def ready_counts(self, channel: Any) -> dict[str, int]:
        """Each queue's ready messages as the broker reports them (a passive queue.declare)."""
        counts = {}
        for name, queue in self.queues.items():
            counts[name] = channel.queue_declare(queue=queue.name, passive=True).message_count
        return counts

    def delete(self, channel: Any) -> None:
        delete_all(channel, [q.name for q in self.queues.values()], [self.exchange.name])

    def describe(self) -> dict[str, Any]:
        return {
            "exchange": {"name": self.exchange_name, "broker_name": self.exchange.name, "type": self.exchange_type},
            "bindings": [{**b.as_param(self.exchange_type), "label": b.label(self.exchange_type)} for b in self.bindings],
            "queues": {name: q.name for name, q in self.queues.items()},
        }
