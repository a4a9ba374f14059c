"""The ``amqp-dead-letter`` run's topology on RabbitMQ, and the broker's ``x-death`` read back.

Names carry the run's namespace, as in ``resources.RunTopology``:

* ``orders`` (direct) → ``work`` by the key ``work``: where the orders go and come back;
* ``retry-1`` … ``retry-(N-1)``: one delayed-retry queue per retry, each with its own
  ``x-message-ttl`` (the backoff, doubling) and ``x-dead-letter-exchange: orders`` with the
  key ``work``. A message the consumer puts there waits out the TTL and the broker
  dead-letters it (reason ``expired``) back to the work queue. One queue per delay because
  a queue only expires messages at its head: a short delay behind a long one in a shared
  queue would wait for the long one;
* with ``dead_letter`` on, ``work`` has ``x-dead-letter-exchange: dlx`` (fanout) → ``dlq``:
  a message the consumer rejects without requeue is routed there by the broker, which
  stamps its ``x-death`` header (queue, reason, count, exchange, routing keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .resources import QUEUE_EXPIRES_MS, delete_all

WORK, DLQ, KEY = "work", "dlq", "work"
EXCHANGE, DLX = "orders", "dlx"


def retry_queue(number: int) -> str:
    return f"retry-{number}"


class DeadLetterTopology:
    def __init__(self, namespace: str, delays_ms: Sequence[int], dead_letter: bool) -> None:
        from kombu import Exchange, Queue

        self.prefix = f"{namespace}."
        self.delays_ms = list(delays_ms)
        self.dead_letter = dead_letter
        self.exchange = Exchange(self.prefix + EXCHANGE, type="direct", durable=False, auto_delete=True,
                                 delivery_mode=1)
        self.dlx = Exchange(self.prefix + DLX, type="fanout", durable=False, auto_delete=True, delivery_mode=1)
        expires = {"x-expires": QUEUE_EXPIRES_MS}
        work_args = {**expires, "x-dead-letter-exchange": self.dlx.name} if dead_letter else expires
        self.queues: dict[str, Any] = {WORK: Queue(self.prefix + WORK, durable=False, queue_arguments=work_args)}
        for number, delay in enumerate(self.delays_ms, 1):
            self.queues[retry_queue(number)] = Queue(
                self.prefix + retry_queue(number), durable=False,
                queue_arguments={**expires, "x-message-ttl": delay, "x-dead-letter-exchange": self.exchange.name,
                                 "x-dead-letter-routing-key": KEY})
        if dead_letter:
            self.queues[DLQ] = Queue(self.prefix + DLQ, durable=False, queue_arguments=expires)

    def declare(self, channel: Any) -> None:
        self.exchange(channel).declare()
        if self.dead_letter:
            self.dlx(channel).declare()
        for queue in self.queues.values():
            queue(channel).declare()
        self.queues[WORK](channel).bind_to(self.exchange, routing_key=KEY)
        if self.dead_letter:
            self.queues[DLQ](channel).bind_to(self.dlx, routing_key="")

    def ready_counts(self, channel: Any) -> dict[str, int]:
        """Each queue's ready messages as the broker reports them (a passive queue.declare)."""
        return {name: channel.queue_declare(queue=queue.name, passive=True).message_count
                for name, queue in self.queues.items()}

    def delete(self, channel: Any) -> None:
        exchanges = [self.exchange.name] + ([self.dlx.name] if self.dead_letter else [])
        delete_all(channel, [q.name for q in self.queues.values()], exchanges)

    def short(self, name: str) -> str:
        """A broker name without the run's prefix, as the events and the view say it."""
        return name.removeprefix(self.prefix)

    def x_death(self, headers: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The broker's ``x-death`` entries of a message, newest first, with the run's short names."""
        entries = (headers or {}).get("x-death") or []
        return [{"queue": self.short(str(e.get("queue", ""))), "reason": str(e.get("reason", "")),
                 "count": int(e.get("count", 0) or 0), "exchange": self.short(str(e.get("exchange", ""))),
                 "routing_keys": [self.short(str(k)) for k in e.get("routing-keys") or []]}
                for e in entries if isinstance(e, dict)]

    def describe(self) -> dict[str, Any]:
        return {
            "exchange": {"name": EXCHANGE, "broker_name": self.exchange.name, "type": "direct"},
            "dead_letter_exchange": {"name": DLX, "broker_name": self.dlx.name, "type": "fanout"}
            if self.dead_letter else None,
            "queues": {name: q.name for name, q in self.queues.items()},
            "retry_queues": [{"queue": retry_queue(n), "ttl_ms": delay} for n, delay in enumerate(self.delays_ms, 1)],
        }
