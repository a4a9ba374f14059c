"""The HTTP lane: the caller POSTs each order and waits for the fulfilment server's answer.

The downstream is a real loopback HTTP server. Its outage closes the listening socket, so a
call made meanwhile meets "connection refused" at once; it comes back on the same port.
Every call opens its own connection (``Connection: close``): a kept-alive connection would
outlive the listening socket and hide the outage.
"""

from __future__ import annotations

import http.client
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from ...services.http_server import LoopbackHttpService, read_body, send_json
from ..lane import CallFailed, HandlingCrashed, Lane

SERVER = "server:http"
# The caller gives up on a call after this many times the work (plus a second): only a hung server gets there.
TIMEOUT_FACTOR = 3


class FulfilmentHttpServer(LoopbackHttpService):
    thread_name = "http-fulfilment"

    def __init__(self, lane: HttpLane) -> None:
        self.lane = lane

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        request.close_connection = True
        try:
            order = json.loads(read_body(request) or b"{}").get("order", "")
        except ValueError:
            send_json(request, 400, {"error": "the body is not JSON"})
            return
        if request.command != "POST" or request.path != "/orders" or not order:
            send_json(request, 404, {"error": "POST /orders with {\"order\": id}"})
            return
        try:
            self.lane.fulfil(order, SERVER, method="POST", path="/orders")
        except HandlingCrashed:
            send_json(request, 500, {"error": "handler crashed"})
            return
        send_json(request, 200, {"order": order, "state": "fulfilled"})


class HttpLane(Lane):
    protocol = "http"
    sync = True

    def setup(self) -> None:
        self.server = FulfilmentHttpServer(self)
        self.port = 0
        self.timeout_s = self.fulfilment.work_s * TIMEOUT_FACTOR + 1.0

    def start_downstream(self) -> None:
        self.server.start(self.port)
        self.port = self.server.address[1]

    def stop_downstream(self) -> None:
        self.server.stop()

    def call(self, order: str) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        try:
            conn.request("POST", "/orders", body=json.dumps({"order": order}).encode(),
                         headers={"Content-Type": "application/json", "Connection": "close"})
            response = conn.getresponse()
            body = response.read()
        except ConnectionRefusedError:
            raise CallFailed("connection refused", status=None) from None
        except TimeoutError:
            raise CallFailed(f"timed out after {self.timeout_s * 1000:.0f} ms", status=None) from None
        except (http.client.RemoteDisconnected, ConnectionResetError):
            # The server went away mid-call (its outage began): the caller cannot know whether the work was done.
            raise CallFailed("connection dropped before the response", retry=False, status=None) from None
        except (OSError, http.client.HTTPException) as exc:
            raise CallFailed(f"call failed: {exc}", status=None) from None
        finally:
            conn.close()
        if response.status >= 500:
            error = _error_of(body) or response.reason
            raise CallFailed(f"{response.status} from the server: {error}", retry=True, status=response.status)
        if response.status != 200:
            raise CallFailed(f"{response.status} from the server: {_error_of(body)}", status=response.status)
        return {"status": response.status}

    def teardown(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()


def _error_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):
        return body[:80].decode("utf-8", "replace")

