"""``grpc-person``: the seed's PersonService over real grpcio (lessons 1 and 4).

Client and server share a contract agreed in advance (protos/person.proto, compiled into
flows/grpc_gen). The client waits for every call, so what it perceives is the whole call;
a per-call deadline shorter than the server's delay ends the call at the client with
``DEADLINE_EXCEEDED`` while the server, which cannot know, finishes anyway. A share of
GetPerson calls ask for an id nobody has, and the server answers ``NOT_FOUND``.

``concurrency`` client threads share one channel (HTTP/2 multiplexes their calls).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from ..context import RunCancelled, RunContext
from ..grpc_codegen import PROTO_DIR
from ..params import choice_param, float_param, int_param
from ..registry import Workflow

if TYPE_CHECKING:
    import grpc

PROTO_FILE = PROTO_DIR / "person.proto"
CLIENT = "client"
METHODS = ("GetPerson", "CreatePerson")
NAMES = ("Barbara Liskov", "Ken Thompson", "Margaret Hamilton", "Dennis Ritchie", "Frances Allen", "Radia Perlman")
# Ids the server cannot have: far above anything CreatePerson can reach within one run.
UNKNOWN_ID_BASE = 1_000_000


@cache
def proto_text() -> str:
    return PROTO_FILE.read_text(encoding="utf-8")


def message_dict(message: Any) -> dict[str, Any]:
    """A protobuf message as a dict of its declared fields, defaults included (proto3 omits them on the wire)."""
    out: dict[str, Any] = {}
    for name, nested in _fields(message.DESCRIPTOR):
        if nested:
            out[name] = message_dict(getattr(message, name)) if message.HasField(name) else None
        else:
            out[name] = getattr(message, name)
    return out


@cache
def _fields(descriptor: Any) -> tuple[tuple[str, bool], ...]:
    """(name, is a message) of each declared field: read once per message type, not on every call."""
    return tuple((field.name, field.message_type is not None) for field in descriptor.fields)


@dataclass(frozen=True)
class PlannedCall:
    number: int  # 1-based
    method: str
    request: dict[str, Any]
    unknown_id: bool  # a GetPerson that asks for an id the server does not have

    @property
    def message_id(self) -> str:
        return f"{'get' if self.method == 'GetPerson' else 'create'}-{self.number}"


def plan_call(index: int, params: dict[str, Any], known_ids: list[int]) -> PlannedCall:
    """Call ``index`` (0-based) of a run: deterministic, so a rerun makes the same calls."""
    methods = params["methods"]
    if methods == "both":
        method, nth = METHODS[(index + 1) % 2], index // 2  # Create first, then Get, alternating
    else:
        method, nth = methods, index
    if method == "CreatePerson":
        name = NAMES[nth % len(NAMES)]
        return PlannedCall(index + 1, method, {"person": {"name": name, "age": 20 + (nth * 7) % 60}}, False)
    # Exactly round-down(error_rate × n) of the first n GetPerson calls ask for an unknown id,
    # spread evenly rather than drawn at random, so the share is what the user asked for.
    rate = params["error_rate"]
    unknown = int((nth + 1) * rate + 1e-9) > int(nth * rate + 1e-9)
    pid = UNKNOWN_ID_BASE + nth if unknown else known_ids[nth % len(known_ids)]
    return PlannedCall(index + 1, method, {"id": pid}, unknown)


class GrpcPerson(Workflow):
    slug = "grpc-person"
    title = "gRPC PersonService: contract, deadlines, errors"
    pattern = "sync"
    protocol = "grpc"
    lesson = (
        "gRPC: client and server agree on a contract in advance (a .proto) and both are generated from it. "
        "Calls are fast and typed, but the client waits for each one: a deadline shorter than the server's "
        "work ends the call with DEADLINE_EXCEEDED at the client while the server still finishes; asking for "
        "an unknown id returns NOT_FOUND."
    )
    params = {
        "calls": int_param(20, 1, 20000, "How many unary calls the client makes"),
        "concurrency": int_param(2, 1, 32, "Client threads calling at the same time over one shared channel"),
        "delay_ms": int_param(30, 0, 5000, "Server-side processing delay per call (ms)"),
        "deadline_ms": int_param(500, 1, 30000, "Per-call deadline set by the client (ms); delay > deadline → DEADLINE_EXCEEDED"),
        "error_rate": float_param(0.2, 0.0, 1.0, "Share of GetPerson calls that ask for an unknown id → NOT_FOUND"),
        "methods": choice_param("both", ("both", "GetPerson", "CreatePerson"), "Which RPCs to call (both = alternate)"),
        "rate": float_param(5.0, 0.0, 1000.0, "Calls per second across all client threads (0 = as fast as possible)"),
    }

    def expected(self, params: dict[str, Any]) -> int:
        return params["calls"]

    @classmethod
    def contract(cls) -> dict[str, Any]:
        return {**super().contract(), "proto": proto_text()}

    def open_channel(self, target: str) -> grpc.Channel:
        from ..services.person_grpc import open_channel

        return open_channel(target)

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        from ..services.person_grpc import PersonGrpcService

        # A handler thread per client thread, plus slack: calls queue at the server only when
        # calls the client already gave up on (delay > deadline) still occupy its threads.
        self.service = PersonGrpcService(delay_ms=self.p["delay_ms"], emit=self.ctx.emit,
                                         workers=self.p["concurrency"] + 2)
        self.channel: grpc.Channel | None = None

    def start_consumers(self) -> None:
        self.service.start()
        self.channel = self.open_channel(self.service.target)
        self._connect(self.ctx, self.channel)

    def produce(self) -> None:
        self.session = CallSession(self.ctx, self.channel, self.service.store.ids())
        self.session.run()

    def settle(self) -> None:
        # Calls the client gave up on may still be running on the server: let them finish
        # so their late ``process`` events are part of the record.
        try:
            self.ctx.wait_until(lambda: self.service.wait_idle(0.05), self.p["delay_ms"] / 1000.0 + 2.0,
                                "the server to finish the calls the client gave up on", step=0)
        except TimeoutError:
            pass  # what it never finished is simply not in the record

    def report(self) -> dict[str, Any]:
        return {
            **self.session.results(),
            "server": self.service.target,
            "late_server_finishes": self.service.servicer.late_finishes,
            "persons_on_server": len(self.service.store),
            "proto": proto_text(),
        }

    def teardown(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.service.stop()

    @staticmethod
    def _connect(ctx: RunContext, channel: grpc.Channel, timeout: float = 5.0) -> None:
        """Connect before the first call, so no call's latency includes the HTTP/2 handshake."""
        import grpc

        ready = grpc.channel_ready_future(channel)
        connected = threading.Event()
        ready.add_done_callback(lambda _: connected.set())
        try:
            ctx.wait_for(connected, timeout, "the gRPC channel to connect")
        finally:
            ready.cancel()
        ready.result()


class CallSession:
    """The client side: worker threads take the next call number, call, and record what they saw."""

    def __init__(self, ctx: RunContext, channel: grpc.Channel, known_ids: list[int]) -> None:
        import grpc

        from ..grpc_gen import person_pb2, person_pb2_grpc
        from ..services.person_grpc import MESSAGE_ID_KEY

        self.ctx = ctx
        self.channel = channel
        self.known_ids = known_ids
        stub = person_pb2_grpc.PersonServiceStub(channel)
        self.methods = {
            "GetPerson": (stub.GetPerson, person_pb2.GetPersonRequest),
            "CreatePerson": (stub.CreatePerson, person_pb2.CreatePersonRequest),
        }
        self.calls = ctx.params["calls"]
        self.deadline_ms = ctx.params["deadline_ms"]
        self.timeout_s = self.deadline_ms / 1000.0
        self.pacer = ctx.pacer(ctx.params["rate"])
        self.lock = threading.Lock()
        self.next_index = 0
        self.codes: Counter[tuple[str, str]] = Counter()
        self.failure: BaseException | None = None
        self.started = self.finished = 0.0
        # Looked up once here rather than imported again on every call.
        self.rpc_error, self.id_key = grpc.RpcError, MESSAGE_ID_KEY

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._worker, name=f"grpc-client-{n + 1}", daemon=True)
            for n in range(self.ctx.params["concurrency"])
        ]
        self.started = time.perf_counter()
        for thread in threads:
            thread.start()
        closed = False
        for thread in threads:
            while thread.is_alive():
                thread.join(0.05)
                if self.ctx.cancelled.is_set() and not closed:
                    # Ends every call in flight at once (CANCELLED) instead of waiting out deadlines.
                    self.channel.close()
                    closed = True
        self.finished = time.perf_counter()
        self.ctx.check()
        if self.failure is not None:
            raise self.failure

    def _worker(self) -> None:
        try:
            while self.failure is None:
                with self.lock:
                    self.pacer.wait()
                    index = self.next_index
                    self.next_index += 1
                if index >= self.calls:
                    return
                self.call(plan_call(index, self.ctx.params, self.known_ids))
        except RunCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the run thread, which raises it
            self.failure = exc

    def call(self, planned: PlannedCall) -> tuple[str, float]:
        """Make one call; returns the status code name and the milliseconds the client waited."""
        emit = self.ctx.emit
        method, message_id = planned.method, planned.message_id
        invoke, request_type = self.methods[method]
        request = request_type(**planned.request)
        emit("request", CLIENT, message_id, method=method, request=planned.request,
             request_hex=request.SerializeToString().hex(), deadline_ms=self.deadline_ms, unknown_id=planned.unknown_id)
        started = time.perf_counter()
        try:
            response = invoke(request, timeout=self.timeout_s, metadata=((self.id_key, message_id),))
        except self.rpc_error as exc:
            waited_ms = round((time.perf_counter() - started) * 1000, 3)
            status = exc.code()
            code = status.name if status is not None else "UNKNOWN"
            details = exc.details() or ""
            body, body_hex = None, ""
        else:
            waited_ms = round((time.perf_counter() - started) * 1000, 3)
            code, details = "OK", ""
            body, body_hex = message_dict(response), response.SerializeToString().hex()
        # Sync IPC: the caller perceives the whole call, which is also its end to end.
        emit("response", CLIENT, message_id, method=method, code=code, details=details,
             perceived_ms=waited_ms, end_to_end_ms=waited_ms, response=body, response_hex=body_hex)
        if code != "OK":
            emit("error", CLIENT, message_id, method=method, code=code, reason=details or code)
        with self.lock:
            self.codes[(method, code)] += 1
        return code, waited_ms

    def results(self) -> dict[str, Any]:
        by_method: dict[str, dict[str, int]] = {}
        codes: Counter[str] = Counter()
        for (method, code), n in sorted(self.codes.items()):
            by_method.setdefault(method, {})[code] = n
            codes[code] += n
        made = sum(codes.values())
        seconds = self.finished - self.started
        return {
            "calls": made,
            "codes": dict(codes),
            "by_method": by_method,
            "call_seconds": round(seconds, 4),
            "throughput_per_s": round(made / seconds, 1) if seconds > 0 else None,
        }
