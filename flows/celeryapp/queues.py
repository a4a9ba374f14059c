"""The queues of one ``celery-order`` run, defined once for the web process and the worker.

RabbitMQ refuses a second declaration of a queue with different arguments, so whoever
declares first (the view sending a task, or the worker starting) must declare the same
thing: non-durable, ``x-expires`` so a queue left behind by a dead process goes away.
"""

from __future__ import annotations

from typing import Any

EXPIRES_MS = 30 * 60 * 1000


def task_queue(name: str) -> Any:
    from kombu import Exchange, Queue

    return Queue(name, Exchange(name, type="direct", durable=False, auto_delete=True), routing_key=name,
                 durable=False, queue_arguments={"x-expires": EXPIRES_MS})


def reply_queue(name: str) -> Any:
    from kombu import Queue

    return Queue(name, durable=False, queue_arguments={"x-expires": EXPIRES_MS})
