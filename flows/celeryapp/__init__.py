"""The Celery app of ``celery-order``, built lazily from a broker configuration.

The web process builds one app per broker configuration (``get_app``); a worker started
with ``celery -A flows.celeryapp worker`` builds its own from the environment (``app``):

* ``FLOWS_CELERY_BROKER_URL``: the broker (default ``AMQP_URL``, then RabbitMQ on localhost);
* ``FLOWS_CELERY_QUEUE``: the run's task queue, declared exactly as the web process does
  (``flows.celeryapp.queues``), so both ends agree on its arguments.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_apps: dict[tuple, Any] = {}
_lock = threading.Lock()


def make_app(broker: dict[str, Any], queue: str | None = None) -> Any:
    from celery import Celery

    from . import tasks
    from .queues import task_queue

    app = Celery("flows", set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # One task at a time per worker: with acks_late, the running task is the only unacked one.
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        # No remote control: nothing here uses it, and it would leave a celery.pidbox exchange behind.
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
        broker_heartbeat=0,
        task_default_delivery_mode="transient",
        **broker,
    )
    if queue:
        app.conf.task_queues = [task_queue(queue)]
    tasks.register(app)
    return app


def get_app(broker: dict[str, Any]) -> Any:
    """The web process's app for a broker configuration (embedded or RabbitMQ), built once."""
    key = tuple(sorted((k, repr(v)) for k, v in broker.items()))
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = _apps[key] = make_app(broker)
        return app


def _app_from_environment() -> Any:
    url = os.environ.get("FLOWS_CELERY_BROKER_URL") or os.environ.get("AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672//"
    broker = {"broker_url": url, "broker_transport_options": {"confirm_publish": True}}
    return make_app(broker, os.environ.get("FLOWS_CELERY_QUEUE") or None)


def __getattr__(name: str) -> Any:
    # ``celery -A flows.celeryapp`` looks for ``app``; build it only then.
    if name == "app":
        app = _app_from_environment()
        globals()["app"] = app
        return app
    raise AttributeError(name)
