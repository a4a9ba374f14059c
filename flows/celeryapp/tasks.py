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

from celery.exceptions import Reject, WorkerTerminate

from . import relay

TASK = "orders.process"
TASK_ACKS_LATE = "orders.process_acks_late"
SLICE_S = 0.02

# Embedded workers run in this process as threads, and a thread cannot be SIGKILLed: the
# workflow marks a killed worker's thread here and its task dies at its next pause, as
# abruptly as Python allows (no return, no ack, no failure handling; see workers.py).
_embedded: dict[int, str] = {}  # worker thread id → worker name
_killed: set[int] = set()
# A retiring embedded worker (removed by hand) runs no new task, and is stopped once idle.
_retiring: set[int] = set()
_busy: set[int] = set()  # embedded worker threads inside a task
_lock = threading.Lock()


class WorkerKilled(WorkerTerminate):
    """The in-process stand-in for SIGKILL.

    Celery re-raises WorkerTerminate from the pool (any other BaseException it would turn
    into WorkerLostError and, with acks_late, ack as failed), so the worker stops on the
    spot and its channel closes with the task unacked.
    """


def embedded_worker_started(thread_id: int, name: str) -> None:
    with _lock:
        _embedded[thread_id] = name
        _killed.discard(thread_id)
        _retiring.discard(thread_id)


def embedded_worker_stopped(thread_id: int) -> None:
    with _lock:
        _embedded.pop(thread_id, None)
        _killed.discard(thread_id)
        _retiring.discard(thread_id)


def retire_embedded(thread_id: int) -> None:
    with _lock:
        _retiring.add(thread_id)


def busy_embedded(thread_id: int) -> bool:
    with _lock:
        return thread_id in _busy


def kill_embedded(thread_id: int) -> None:
    with _lock:
        _killed.add(thread_id)


def pause(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    me = threading.get_ident()
    while True:
        if me in _killed:
            raise WorkerKilled(1)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SLICE_S, left))


def worker_name(task: Any) -> str:
    return _embedded.get(threading.get_ident()) or task.request.hostname or "worker"


def register(app: Any) -> None:
    app.task(name=TASK, bind=True, acks_late=False)(process_order)
    app.task(name=TASK_ACKS_LATE, bind=True, acks_late=True)(process_order)


def process_order(task: Any, order: dict[str, Any], ctl: dict[str, Any]) -> str:
    """``order``: {id, sent_at (epoch s)}; ``ctl``: {run_id, reply_to, work_ms, idempotent}."""
    me = threading.get_ident()
    if me in _retiring and task.acks_late:
        # Not acked yet: back to the queue for another worker, never started here.
        raise Reject("this embedded worker is being removed", requeue=True)
    with _lock:
        _busy.add(me)
    try:
        return _process_order(task, order, ctl)
    finally:
        with _lock:
            _busy.discard(me)


def _process_order(task: Any, order: dict[str, Any], ctl: dict[str, Any]) -> str:
    order_id, reply_to = order["id"], ctl["reply_to"]
    request = task.request
    worker = worker_name(task)
    info = request.delivery_info or {}
    common = {"worker": worker, "task": task.name, "acks_late": bool(task.acks_late), "pid": os.getpid()}
    relay.send(task.app, reply_to, "deliver", order_id, redelivered=bool(info.get("redelivered")),
               **common)
    if not task.acks_late:
        relay.send(task.app, reply_to, "ack", order_id, early=True,
                   note="acked on receipt (acks_late off): the broker forgets the task now", **common)
    half = ctl["work_ms"] / 2000.0
    pause(half)  # prepare the order
    effect = charge(ctl, task.name, order_id)
    relay.send(task.app, reply_to, "process", order_id, effect=effect,
               end_to_end_ms=round((time.time() - order["sent_at"]) * 1000.0, 3), **common)
    pause(half)  # send the receipt: the worker may be killed here, after the charge
    # Celery acks an acks_late task right after it returns; the run shows that as the ack.
    relay.send(task.app, reply_to, "finished", order_id, task_ms=round((time.time() - order["sent_at"]) * 1000.0, 3),
               **common)
    return "charged" if effect else "already charged"


def charge(ctl: dict[str, Any], consumer: str, order_id: str) -> bool:
    """The side effect. Idempotent tasks apply it once per order: the inbox row is the proof."""
    if not ctl.get("idempotent"):
        return True
    _ensure_django()
    from django.db import connection

    from .. import inbox

    try:
        return inbox.first_time(ctl["run_id"], consumer, order_id)
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
