"""The gRPC lane: a unary ``PlaceOrder`` call with a deadline, to a real grpcio server.

The order travels as raw bytes through a generic handler: the lesson is the waiting, not
the contract (``grpc-person`` shows the contract), so no .proto is added for it.

Each call's deadline is a little over twice the work: ``slow`` (work × 5) ends calls with
``DEADLINE_EXCEEDED`` while the server, which cannot know, finishes the work anyway. The
outage stops the server (UNAVAILABLE: connection refused); it comes back on the same
port, and the channel's reconnect backoff is kept short so calls find it at once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..lane import CallFailed, HandlingCrashed, Lane

SERVER = "server:grpc"
SERVICE, METHOD = "fulfilment.Fulfilment", "PlaceOrder"
DEADLINE_FACTOR, DEADLINE_SLACK_MS = 2.5, 100
# Loopback only, never through a proxy; a restarted server is found within a tenth of a second.
CHANNEL_OPTIONS = (
    ("grpc.enable_http_proxy", 0),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
)
# Handler threads: a call the caller gave up on (deadline) may still be working when the next arrives.
WORKERS = 4


def deadline_ms(work_ms: float) -> float:
    """The caller's deadline for one call, from the work it asked for (not the slowed one)."""
    return work_ms * DEADLINE_FACTOR + DEADLINE_SLACK_MS


class GrpcLane(Lane):
    protocol = "grpc"
    sync = True

    def setup(self) -> None:
        import grpc

        self.port = 0
        self.server: grpc.Server | None = None
        self.executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="grpc-fulfilment")
        self.deadline_ms = deadline_ms(self.ctx.params.get("work_ms", self.fulfilment.work_ms))
        self.channel: grpc.Channel | None = None

    def _place_order(self, request: bytes, context: Any) -> bytes:
        import grpc

        order = request.decode()
        try:
            self.fulfil(order, SERVER, method=METHOD)
        except HandlingCrashed:
            context.abort(grpc.StatusCode.INTERNAL, "handler crashed")
        return b"fulfilled " + request

    def start_downstream(self) -> None:
        import grpc

        handler = grpc.method_handlers_generic_handler(
            SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(self._place_order)})
        server = grpc.server(self.executor, handlers=(handler,), options=CHANNEL_OPTIONS[:1])
        port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        if not port:
            raise RuntimeError(f"could not bind 127.0.0.1:{self.port} for the gRPC fulfilment server")
        server.start()
        self.server, self.port = server, port
        if self.channel is None:
            self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
            self.invoke = self.channel.unary_unary(f"/{SERVICE}/{METHOD}")
            # Connected before the first order, so no call's wait includes the HTTP/2 handshake.
            grpc.channel_ready_future(self.channel).result(timeout=5.0)

    def stop_downstream(self) -> None:
        if getattr(self, "server", None) is not None:
            # No grace: calls in flight end now (the caller sees UNAVAILABLE or CANCELLED).
            self.server.stop(grace=None).wait(5.0)
            self.server = None

    def call(self, order: str) -> dict[str, Any]:
        import grpc

        try:
            self.invoke(order.encode(), timeout=self.deadline_ms / 1000.0)
        except grpc.RpcError as exc:
            code = exc.code()
            name = code.name if code is not None else "UNKNOWN"
            details = exc.details() or ""
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise CallFailed(f"deadline exceeded after {self.deadline_ms:.0f} ms", code=name) from None
            if code is grpc.StatusCode.INTERNAL:
                raise CallFailed(f"INTERNAL: {details}", retry=True, code=name) from None
            if code is grpc.StatusCode.UNAVAILABLE:
                raise CallFailed(f"unavailable: {_unavailable_why(details)}", code=name, details=details) from None
            if code is grpc.StatusCode.CANCELLED:
                # The server stopped with the call in flight: gRPC cancels it, with no more to say than that.
                raise CallFailed("cancelled: the server stopped during the call", code=name, details=details) from None
            raise CallFailed(f"{name}: {details}" if details else name, code=name) from None
        return {"code": "OK", "deadline_ms": self.deadline_ms}

    def teardown(self) -> None:
        self.stop_downstream()
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if getattr(self, "executor", None) is not None:
            self.executor.shutdown(wait=True)


def _unavailable_why(details: str) -> str:
    """UNAVAILABLE in the caller's words: nobody listening, or the server stopping under a call in flight."""
    lowered = details.lower()
    if "refused" in lowered:
        return "connection refused"
    if "cancelling all calls" in lowered or "goaway" in lowered or "shutting down" in lowered:
        return "the server stopped during the call"
    return details or "the server is not reachable"
