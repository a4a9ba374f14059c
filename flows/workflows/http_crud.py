"""``http-crud``: CRUD on a real persons service over HTTP (lessons 1 and 3).

The client waits for every response (sync IPC: what the caller perceives is the whole
processing time). Repeating the same PUT leaves the server state identical to one PUT;
repeating the same POST creates a new person each time.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from ..context import RunContext
from ..params import float_param, int_param
from ..registry import Workflow
from ..services.persons import MESSAGE_HEADER, PersonsService, state_hash

# Injected errors are random; reading the state is retried rather than failing the run.
INSPECT_TRIES = 20
SNAPSHOTS = ("after creating", "after 1 PUT", "after the PUTs", "after the POSTs", "after deleting")
NAMES = ("Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Alan", "Radia")


class HttpCrud(Workflow):
    slug = "http-crud"
    title = "HTTP CRUD on a persons service"
    pattern = "sync"
    protocol = "http"
    lesson = (
        "Sync IPC: the client waits for each response, so the latency it perceives is the whole "
        "processing time. PUT is idempotent: repeating it leaves the same state. POST is not: "
        "repeating it creates a new person each time."
    )
    params = {
        "persons": int_param(3, 1, 50, "Persons to create, read and finally delete"),
        "repeat": int_param(3, 1, 20, "How many times the same PUT, and the same POST, are sent"),
        "delay_ms": int_param(40, 0, 2000, "Server-side processing delay per request (ms)"),
        "error_rate": float_param(0.0, 0.0, 1.0, "Share of requests the server fails with 503"),
        "rate": float_param(4.0, 0.0, 200.0, "Requests per second (0 = as fast as possible)"),
    }

    def expected(self, params: dict[str, Any]) -> int:
        # POST, GET and DELETE per person; the repeated PUTs and POSTs; DELETE of the latter;
        # five GET /persons that read the server's state between the steps.
        return 3 * params["persons"] + 3 * params["repeat"] + len(SNAPSHOTS)

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        p = self.p
        self.service = PersonsService(delay_ms=p["delay_ms"], error_rate=p["error_rate"], seed=self.ctx.run_id,
                                      on_request=self._server_hook(self.ctx))

    def start_consumers(self) -> None:
        self.service.start()

    def produce(self) -> None:
        self.outcome = CrudSession(self.ctx, self.service).run()

    def report(self) -> dict[str, Any]:
        return self.outcome

    def teardown(self) -> None:
        self.service.stop()

    @staticmethod
    def _server_hook(ctx: RunContext):  # returns the service's hook type
        def on_request(phase: str, message_id: str, method: str, path: str, status: int, effect: bool,
                       snapshot: dict[str, Any]) -> None:
            if phase == "received":
                ctx.emit("deliver", "server", message_id, method=method, path=path)
            else:
                ctx.emit("process", "server", message_id, method=method, path=path, status=status,
                         effect=effect, **snapshot)
        return on_request


class CrudSession:
    """The client side: one keep-alive connection, one request at a time."""

    def __init__(self, ctx: RunContext, service: PersonsService) -> None:
        self.ctx = ctx
        self.service = service
        host, port = service.base_url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.pacer = ctx.pacer(ctx.params["rate"])
        self.count = 0
        self.statuses: dict[str, int] = {}

    def call(self, method: str, path: str, body: Any = None, step: str = "", planned: bool = True) -> tuple[int, Any]:
        """One request and its response; ``planned=False`` marks a call ``expected`` does not count (a retry)."""
        self.pacer.wait()
        self.count += 1
        message_id = f"{method.lower()}-{self.count}"
        self.ctx.emit("request", "client", message_id, method=method, path=path, step=step, body=body)
        data = json.dumps(body).encode() if body is not None else None
        headers = {MESSAGE_HEADER: message_id, "Content-Type": "application/json"}
        started = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        raw = response.read()
        waited_ms = round((time.perf_counter() - started) * 1000, 3)
        payload = json.loads(raw) if raw else None
        # Sync IPC: the caller perceives the whole processing time, which is also end to end.
        extra = {} if planned else {"planned": False}
        self.ctx.emit("response", "client", message_id, method=method, path=path, status=response.status,
                      step=step, perceived_ms=waited_ms, end_to_end_ms=waited_ms, body=payload, **extra)
        if response.status >= 500:
            self.ctx.emit("error", "client", message_id, method=method, path=path, status=response.status,
                          reason=(payload or {}).get("error", "server error"))
        key = f"{method} {response.status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1
        return response.status, payload

    def state(self, label: str) -> dict[str, Any]:
        """The server's state as it answers ``GET /persons`` over HTTP (not read in-process)."""
        for attempt in range(INSPECT_TRIES):
            # ``expected`` counts one read per snapshot: a read again after a failure is beyond the plan.
            status, listing = self.call("GET", "/persons", step="inspect", planned=attempt == 0)
            if status == 200:
                break
        else:
            raise RuntimeError(f"GET /persons kept failing ({status}) while reading the state {label}")
        return {"step": label, "persons": len(listing), "state_hash": state_hash(listing), "listing": listing}

    def run(self) -> dict[str, Any]:
        p = self.ctx.params
        try:
            ids = []
            for i in range(p["persons"]):
                status, body = self.call("POST", "/persons", {"name": NAMES[i % len(NAMES)], "age": 30 + i}, "create")
                if status == 201:
                    ids.append(body["id"])
            for pid in ids:
                self.call("GET", f"/persons/{pid}", step="read")
            created_state = self.state(SNAPSHOTS[0])

            # Lesson 3, PUT: the same replacement N times.
            target = ids[0] if ids else 1
            put_body = {"name": "Ada Lovelace", "age": 36}
            after_first: dict[str, Any] | None = None
            put_statuses = []
            for _ in range(p["repeat"]):
                status, _ = self.call("PUT", f"/persons/{target}", put_body, "repeat-put")
                put_statuses.append(status)
                if status < 300 and after_first is None:
                    after_first = self.state(SNAPSHOTS[1])
            after_puts = self.state(SNAPSHOTS[2])

            # Lesson 3, POST: the same creation N times.
            created = []
            for _ in range(p["repeat"]):
                status, body = self.call("POST", "/persons", {"name": "Grace Hopper", "age": 85}, "repeat-post")
                if status == 201:
                    created.append(body["id"])
            after_posts = self.state(SNAPSHOTS[3])

            for pid in ids + created:
                self.call("DELETE", f"/persons/{pid}", step="delete")
            deleted_state = self.state(SNAPSHOTS[4])
        finally:
            self.conn.close()

        table = [s for s in (created_state, after_first, after_puts, after_posts, deleted_state) if s]
        return {
            "state_table": [{k: v for k, v in s.items() if k != "listing"} for s in table],
            "put": {
                "repeats": p["repeat"],
                "target": target,
                "state_hash_after_one": (after_first or {}).get("state_hash"),
                "state_hash_after_all": after_puts["state_hash"],
                **put_verdict(put_statuses, (after_first or {}).get("state_hash"), after_puts["state_hash"]),
            },
            "post": {
                "repeats": p["repeat"],
                "persons_before": after_puts["persons"],
                "persons_after": after_posts["persons"],
                "created": len(created),
            },
            "statuses": self.statuses,
            "requests": self.count,
        }


def put_verdict(statuses: list[int], hash_after_one: str | None, hash_after_all: str) -> dict[str, Any]:
    """Whether the repeated PUT showed idempotence, judged on the PUTs that succeeded (as the panel does).

    ``idempotent`` is true only when at least two succeeded and the state after the last equals
    the state after the first; false when they differ; None when fewer than two succeeded (a
    failed PUT changes nothing, so one success alone has nothing to be compared with).
    """
    succeeded = sum(1 for status in statuses if 200 <= status < 300)
    failed = len(statuses) - succeeded
    failures = f"{failed} of {len(statuses)} PUTs failed" if failed else ""
    if succeeded < 2 or hash_after_one is None:
        idempotent = None
        verdict = f"cannot tell: {failures or f'only {succeeded} PUT sent'}"
    else:
        idempotent = hash_after_one == hash_after_all
        same = "left the same state" if idempotent else "left different states"
        verdict = (f"{failures}; the {succeeded} that succeeded {same}" if failed else f"the {succeeded} PUTs {same}")
        verdict += ": idempotent" if idempotent else ": not idempotent"
    return {"succeeded": succeeded, "failed": failed, "idempotent": idempotent, "verdict": verdict}
