"""The order task: charge the order (the side effect), then send the receipt (slow).

Registered twice, with and without ``acks_late``: Celery acks a task message either when
the worker receives it (the default) or after the task returned (``acks_late``). Only in
the second case does a worker that dies mid-task leave the message unacked, so the broker
delivers it again and the task runs again; charging twice is then the duplicate side
effect an idempotent task must prevent (it keeps an inbox: ``InboxEntry``).

Events go to the run through ``relay.send``; the task knows nothing else about the
dashboard.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from . import relay

TASK = "orders.process"
TASK_ACKS_LATE = "orders.process_acks_late"
SLICE_S = 0.02

# Embedded workers run in this process as threads, and a thread cannot be SIGKILLed: the
# workflow puts a killed worker's hostname here and its task dies at its next pause, as
# abruptly as Python allows (no return, no ack, no failure handling; see workers.py).
KILLED: set[str] = set()
_killed_lock = threading.Lock()


class WorkerKilled(BaseException):
    """The in-process stand-in for SIGKILL: not an Exception, so nothing handles it as one."""


def kill(hostname: str) -> None:
    with _killed_lock:
        KILLED.add(hostname)


def pause(hostname: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if hostname in KILLED:
            raise WorkerKilled(hostname)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SLICE_S, left))


def register(app: Any) -> None:
    app.task(name=TASK, bind=True, acks_late=False)(process_order)
    app.task(name=TASK_ACKS_LATE, bind=True, acks_late=True)(process_order)


def process_order(task: Any, order: dict[str, Any], ctl: dict[str, Any]) -> str:
    """``order``: {id, sent_at (epoch s)}; ``ctl``: {run_id, reply_to, work_ms, idempotent}."""
    order_id, reply_to = order["id"], ctl["reply_to"]
    request = task.request
    worker = request.hostname or "worker"
    info = request.delivery_info or {}
    common = {"worker": worker, "task": task.name, "acks_late": bool(task.acks_late), "pid": os.getpid()}
    relay.send(task.app, reply_to, "deliver", order_id, redelivered=bool(info.get("redelivered")),
               delivery_tag=str(request.delivery_tag or ""), **common)
    if not task.acks_late:
        relay.send(task.app, reply_to, "ack", order_id, early=True,
                   note="acked on receipt (acks_late off): the broker forgets the task now", **common)
    half = ctl["work_ms"] / 2000.0
    pause(worker, half)  # prepare the order
    effect = charge(ctl, task.name, order_id)
    relay.send(task.app, reply_to, "process", order_id, effect=effect,
               end_to_end_ms=round((time.time() - order["sent_at"]) * 1000.0, 3), **common)
    pause(worker, half)  # send the receipt: the worker may be killed here, after the charge
    # Celery acks an acks_late task right after it returns; the run shows that as the ack.
    relay.send(task.app, reply_to, "finished", order_id, task_ms=round((time.time() - order["sent_at"]) * 1000.0, 3),
               **common)
    return "charged" if effect else "already charged"


def charge(ctl: dict[str, Any], consumer: str, order_id: str) -> bool:
    """The side effect. Idempotent tasks apply it once per order: the inbox row is the proof."""
    if not ctl.get("idempotent"):
        return True
    _ensure_django()
    from django.db import IntegrityError, connection, transaction

    from ..models import InboxEntry

    try:
        with transaction.atomic():
            InboxEntry.objects.create(run_id=ctl["run_id"], consumer=consumer, message_id=order_id)
        return True
    except IntegrityError:
        return False
    finally:
        if threading.current_thread() is not threading.main_thread():
            connection.close()


def _ensure_django() -> None:
    # A worker started by ``celery -A flows.celeryapp`` has no Django yet; the workflow
    # passes DATABASE_URL so it reaches the same database as the dashboard.
    from django.apps import apps

    if not apps.ready:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        django.setup()
