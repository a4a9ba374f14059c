"""A real gRPC PersonService (lesson 4) on a loopback port, from protos/person.proto.

The servicer is the generated ``PersonServiceServicer`` with a store behind it:
``GetPerson`` answers ``NOT_FOUND`` for an unknown id, ``CreatePerson`` assigns the next
id. A server-side delay makes deadlines visible: when the client gives up first, the
handler still runs to the end (gRPC cannot stop a Python thread), and its ``process``
event says so with ``client_gone``.

With an ``emit`` hook (``RunContext.emit``'s signature) the server records ``deliver``
when a call reaches the handler and ``process`` when the handler is done, at actor
``server``, correlated with the client's events by the ``x-message-id`` metadata.
Without one it is plain grpcio, which is what the benchmark compares against.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from ..grpc_gen import person_pb2, person_pb2_grpc

MESSAGE_ID_KEY = "x-message-id"
SERVER_ACTOR = "server"
# The store is not empty when the lesson starts: GetPerson has someone to find.
SEED_PERSONS = (("Ada Lovelace", 36), ("Grace Hopper", 85), ("Alan Turing", 41))
# Loopback only: never route a local call through a proxy from the environment.
CHANNEL_OPTIONS = (("grpc.enable_http_proxy", 0),)

Emit = Callable[..., Any]


class PersonStore:
    def __init__(self, seed: tuple[tuple[str, int], ...] = SEED_PERSONS) -> None:
        self._lock = threading.Lock()
        self._persons: dict[int, tuple[str, int]] = {}
        for name, age in seed:
            self.create(name, age)

    def create(self, name: str, age: int) -> int:
        with self._lock:
            pid = len(self._persons) + 1
            self._persons[pid] = (name, age)
            return pid

    def get(self, pid: int) -> tuple[str, int] | None:
        with self._lock:
            return self._persons.get(pid)

    def ids(self) -> list[int]:
        with self._lock:
            return sorted(self._persons)

    def __len__(self) -> int:
        with self._lock:
            return len(self._persons)


class PersonServicer(person_pb2_grpc.PersonServiceServicer):
    def __init__(self, store: PersonStore, delay_ms: float, emit: Emit | None, stopping: threading.Event) -> None:
        self.store = store
        self.delay_s = delay_ms / 1000.0
        self.emit = emit
        self.stopping = stopping
        self._idle = threading.Condition()
        self._in_flight = 0
        self.late_finishes = 0  # handlers that finished after their client had given up

    # -- the contract's methods --------------------------------------------------------

    def GetPerson(self, request: person_pb2.GetPersonRequest, context: grpc.ServicerContext) -> person_pb2.PersonResponse:  # noqa: N802
        return self._serve("GetPerson", request, context)

    def CreatePerson(self, request: person_pb2.CreatePersonRequest, context: grpc.ServicerContext) -> person_pb2.PersonResponse:  # noqa: N802
        return self._serve("CreatePerson", request, context)

    # -- handling ----------------------------------------------------------------------

    def _serve(self, method: str, request: Any, context: grpc.ServicerContext) -> person_pb2.PersonResponse:
        emit = self.emit
        message_id = _message_id(context) if emit else ""
        started = time.perf_counter()
        if emit:
            emit("deliver", SERVER_ACTOR, message_id, method=method)
        with self._idle:
            self._in_flight += 1
        try:
            # Wakes at once when the server stops, so a cancelled run is not held up.
            if self.delay_s and self.stopping.wait(self.delay_s):
                context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
            code, details, response, effect = self._apply(method, request)
            if code is not grpc.StatusCode.OK:
                context.set_code(code)
                context.set_details(details)
            client_gone = not context.is_active()
            if client_gone:
                with self._idle:
                    self.late_finishes += 1
            if emit:
                emit("process", SERVER_ACTOR, message_id, method=method, code=code.name, details=details,
                     effect=effect, client_gone=client_gone, server_ms=round((time.perf_counter() - started) * 1000, 3))
            return response
        finally:
            with self._idle:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    def _apply(self, method: str, request: Any) -> tuple[grpc.StatusCode, str, person_pb2.PersonResponse, bool]:
        if method == "GetPerson":
            found = self.store.get(request.id)
            if found is None:
                return grpc.StatusCode.NOT_FOUND, f"person {request.id} not found", person_pb2.PersonResponse(), False
            name, age = found
            found_person = person_pb2.Person(name=name, age=age)
            return grpc.StatusCode.OK, "", person_pb2.PersonResponse(id=request.id, person=found_person), False
        person = request.person
        if not person.name:
            return grpc.StatusCode.INVALID_ARGUMENT, "person.name must not be empty", person_pb2.PersonResponse(), False
        pid = self.store.create(person.name, person.age)
        return grpc.StatusCode.OK, "", person_pb2.PersonResponse(id=pid, person=person), True

    def wait_idle(self, timeout: float) -> bool:
        """True once no handler is running (late ones included), False after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout)


def _message_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == MESSAGE_ID_KEY:
            return value
    return ""


class PersonGrpcService:
    """The grpcio server and its handler threads; ``start()`` binds a free loopback port."""

    def __init__(self, delay_ms: float = 0.0, emit: Emit | None = None, workers: int = 8) -> None:
        self.store = PersonStore()
        self._stopping = threading.Event()
        self.servicer = PersonServicer(self.store, delay_ms, emit, self._stopping)
        self.workers = workers
        self.port = 0
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def target(self) -> str:
        assert self.port, "service not started"
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="grpc-person")
        self._server = grpc.server(self._executor, options=CHANNEL_OPTIONS)
        person_pb2_grpc.add_PersonServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("could not bind a loopback port for the gRPC server")
        self._server.start()

    def wait_idle(self, timeout: float) -> bool:
        return self.servicer.wait_idle(timeout)

    def stop(self) -> None:
        """Stop at once: cancel calls in flight, wake delayed handlers, join their threads."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace=None).wait(5.0)
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def open_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
