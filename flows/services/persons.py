"""A real persons REST service: JSON over HTTP on a loopback port.

``POST /persons`` creates (a new id each time: not idempotent), ``GET /persons/<id>``
reads, ``PUT /persons/<id>`` replaces (idempotent: the same body leaves the same state),
``DELETE /persons/<id>`` removes. ``GET /persons`` lists everything, which is how the
workflow and the tests read the server's real state.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MESSAGE_HEADER = "X-Message-Id"
PERSON_PATH = re.compile(r"^/persons/(\d+)$")

# on_request(phase, message_id, method, path, status, effect, snapshot)
Hook = Callable[[str, str, str, str, int, bool, dict[str, Any]], None]


class PersonsState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._persons: dict[int, dict[str, Any]] = {}
        self._next_id = 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> dict[str, Any]:
        listing = [{"id": pid, **p} for pid, p in sorted(self._persons.items())]
        return {"persons": len(listing), "state_hash": state_hash(listing)}

    def apply(self, method: str, path: str, body: Any) -> tuple[int, Any, bool, dict[str, Any]]:
        """Handle one request; returns (status, response body, state changed, snapshot)."""
        with self._lock:
            before = json.dumps(self._persons, sort_keys=True)
            status, payload = self._dispatch(method, path, body)
            changed = json.dumps(self._persons, sort_keys=True) != before
            return status, payload, changed, self._snapshot_locked()

    def _dispatch(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/persons":
            if method == "GET":
                return 200, [{"id": pid, **p} for pid, p in sorted(self._persons.items())]
            if method == "POST":
                person, problem = _person(body)
                if problem:
                    return 400, {"error": problem}
                pid, self._next_id = self._next_id, self._next_id + 1
                self._persons[pid] = person
                return 201, {"id": pid, **person}
            return 405, {"error": f"{method} not allowed on /persons"}
        match = PERSON_PATH.match(path)
        if not match:
            return 404, {"error": f"no resource at {path}"}
        pid = int(match.group(1))
        if method == "GET":
            if pid not in self._persons:
                return 404, {"error": f"person {pid} not found"}
            return 200, {"id": pid, **self._persons[pid]}
        if method == "PUT":
            person, problem = _person(body)
            if problem:
                return 400, {"error": problem}
            created = pid not in self._persons
            self._persons[pid] = person
            return (201 if created else 200), {"id": pid, **person}
        if method == "DELETE":
            if self._persons.pop(pid, None) is None:
                return 404, {"error": f"person {pid} not found"}
            return 204, None
        return 405, {"error": f"{method} not allowed on {path}"}


def state_hash(listing: list[dict[str, Any]]) -> str:
    """A short fingerprint of the whole state, as ``GET /persons`` returns it."""
    canonical = json.dumps(sorted(listing, key=lambda p: p["id"]), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _person(body: Any) -> tuple[dict[str, Any], str]:
    if not isinstance(body, dict):
        return {}, "body must be a JSON object"
    name, age = body.get("name"), body.get("age")
    if not isinstance(name, str) or not name:
        return {}, "name must be a non-empty string"
    if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 200:
        return {}, "age must be an integer from 0 to 200"
    return {"name": name, "age": age}, ""


class PersonsService:
    """The service plus its server thread; start() picks a free loopback port."""

    def __init__(self, delay_ms: float = 0.0, error_rate: float = 0.0, seed: int | None = None,
                 on_request: Hook | None = None) -> None:
        self.state = PersonsState()
        self.delay_ms = delay_ms
        self.error_rate = error_rate
        self.on_request = on_request
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "service not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are separate writes; with Nagle on, the body waits ~40 ms for
            # the client's delayed ACK and every request looks 40 ms slower than it is.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                service._handle(self)

            do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="persons-service", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _should_fail(self) -> bool:
        with self._random_lock:
            return self.error_rate > 0 and self._random.random() < self.error_rate

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        message_id = handler.headers.get(MESSAGE_HEADER, "")
        method, path = handler.command, handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if self.on_request:
            self.on_request("received", message_id, method, path, 0, False, {})
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000.0)
        if self._should_fail():
            status, payload, changed, snapshot = 503, {"error": "injected server error"}, False, self.state.snapshot()
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, payload, changed, snapshot = 400, {"error": "body is not JSON"}, False, self.state.snapshot()
            else:
                status, payload, changed, snapshot = self.state.apply(method, path, body)
        if self.on_request:
            self.on_request("handled", message_id, method, path, status, changed, snapshot)
        data = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status, HTTPStatus(status).phrase)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if data:
            handler.wfile.write(data)
