"""What the workflows' own HTTP services share: a threaded server on a free loopback port."""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackHttpService:
    """Serves every request with ``handle``, on a thread of its own, until ``stop``."""

    thread_name = "http-service"
    _server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, f"{self.thread_name} not started"
        host, port = self._server.server_address[:2]
        return host, port

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def start(self, port: int = 0) -> None:
        """Listen on ``port`` (0: a free one); a service restarted after ``stop`` can take its old port again."""
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are separate writes; with Nagle on, the body waits ~40 ms for
            # the client's delayed ACK and every request looks 40 ms slower than it is.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # http.server naming
                service.handle(self)

            do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def send_json(request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    """Answer with ``payload`` as JSON (no body for ``None``)."""
    data = b"" if payload is None else json.dumps(payload).encode()
    request.send_response(status, HTTPStatus(status).phrase)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    if data:
        request.wfile.write(data)
