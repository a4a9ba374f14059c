"""The order endpoint of ``celery-order``: ``POST /orders`` enqueues the task and answers 202.

A real HTTP server on a free port, so the client's wait (the *perceived* latency) is what
a customer of such a view would wait: the enqueue, not the work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OrderView:
    """The HTTP endpoint: ``POST /orders`` enqueues the task and answers 202 without waiting for it."""

    def __init__(self, enqueue: Callable[[dict[str, Any]], None]) -> None:
        self.enqueue = enqueue
        self._server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "view not started"
        host, port = self._server.server_address[:2]
        return host, port

    def start(self) -> None:
        view = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    order = json.loads(self.rfile.read(length) or b"{}")
                    view.enqueue(order)
                    status, body = 202, {"id": order["id"], "status": "accepted"}
                except Exception as exc:  # noqa: BLE001 - the client sees a 500 with the reason
                    status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="order-view", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
