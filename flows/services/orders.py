"""The order endpoint of ``celery-order``: ``POST /orders`` enqueues the task and answers 202.

A real HTTP server on a free port, so the client's wait (the *perceived* latency) is what
a customer of such a view would wait: the enqueue, not the work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http_server import LoopbackHttpService, read_body, send_json


class OrderView(LoopbackHttpService):
    """``POST /orders`` enqueues the task and answers 202 without waiting for it."""

    thread_name = "order-view"

    def __init__(self, enqueue: Callable[[dict[str, Any]], None]) -> None:
        self.enqueue = enqueue

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        if request.command != "POST" or request.path != "/orders":
            send_json(request, 405, {"error": f"{request.command} {request.path}: only POST /orders"})
            return
        try:
            order = json.loads(read_body(request) or b"{}")
            self.enqueue(order)
            status, body = 202, {"id": order["id"], "status": "accepted"}
        except Exception as exc:  # noqa: BLE001 - the client sees a 500 with the reason
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        send_json(request, status, body)
