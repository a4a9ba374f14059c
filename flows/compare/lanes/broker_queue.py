"""A lane's queue on the AMQP broker, and what the broker says about it, from any thread.

The AMQP and Celery lanes each keep one queue for the run: declared in ``setup``, read by
the backlog sampler while the run goes (a passive ``queue.declare``: RabbitMQ's ready
count, the memory transport's queue size embedded) and at the end for the cross-check,
deleted in ``teardown``. One admin connection does all of it, behind a lock, as the
sampler and the run thread both use it.
"""

from __future__ import annotations

import threading
from typing import Any


class BrokerQueue:
    def __init__(self, amqp: Any, queue: Any) -> None:
        self.amqp = amqp
        self.queue = queue
        self._lock = threading.Lock()
        self._conn = amqp.connection()
        self._channel = self._conn.channel()

    @property
    def name(self) -> str:
        return self.queue.name

    def declare(self) -> None:
        with self._lock:
            self.queue(self._channel).declare()

    def depth(self) -> int | None:
        """Ready messages now; None once the queue is deleted."""
        with self._lock:
            if self._conn is None:
                return None
            return self._channel.queue_declare(queue=self.name, passive=True).message_count

    def counts(self) -> dict[str, Any]:
        """The end-of-run cross-check: the queue, its depth and (RabbitMQ) its consumers."""
        with self._lock:
            declared = self._channel.queue_declare(queue=self.name, passive=True)
        counts: dict[str, Any] = {"queue": self.name, "depth": declared.message_count}
        if not self.amqp.embedded:  # the memory transport does not count consumers
            counts["consumers"] = declared.consumer_count
        return counts

    def delete(self) -> None:
        """Delete the queue (and its exchange, if it has its own) and close the connection; never raises."""
        from ...amqp.resources import delete_all

        with self._lock:
            if self._conn is None:
                return
            exchange = self.queue.exchange.name if self.queue.exchange is not None else ""
            try:
                delete_all(self._conn.channel(), [self.name], [exchange] if exchange else [])
            finally:
                self._conn.release()
                self._conn = None
