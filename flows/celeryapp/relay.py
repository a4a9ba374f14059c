"""Task events from a Celery worker, in whatever process, to the run that started the work.

A worker cannot reach the web process's recorder, so a task publishes each event as JSON
to its run's reply queue on the same broker; the workflow consumes that queue and
re-emits the events through ``ctx.emit`` (which stamps ``seq`` and ``t_ms``). This is the
only channel between a worker and the dashboard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def send(app: Any, reply_to: str, kind: str, order_id: str, **attrs: Any) -> None:
    """Worker side: one event for the run listening on ``reply_to``."""
    event = {"kind": kind, "order_id": order_id, "attrs": attrs, "wall": time.time()}
    with app.producer_pool.acquire(block=True) as producer:
        producer.publish(event, exchange="", routing_key=reply_to, serializer="json", delivery_mode=1,
                         retry=True, retry_policy={"max_retries": 3})


def listener(broker: Any, queue: Any, on_event: Callable[[dict[str, Any]], None]) -> Any:
    """Web side: a consumer of the reply queue that hands each event to ``on_event``, in order."""
    from ..amqp.consumers import QueueConsumer

    def handle(consumer: Any, message: Any) -> None:
        on_event(message.payload)
        message.ack()

    return QueueConsumer(broker, queue, "celery-events", handle, prefetch=100)
