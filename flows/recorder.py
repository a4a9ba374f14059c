"""Stamping events: the cheap part that runs on the emitting thread or coroutine.

Broker callbacks are synchronous and Channels is asynchronous, so ``emit`` must be safe
and cheap from both: it takes one lock, stamps ``seq`` and ``t_ms``, appends a tuple and,
only when the buffer was empty, wakes the pipeline. Everything slow (JSON, SQL, the
channel layer) happens later on the pipeline's own thread.

A run's log ends with its ``done`` event: ``emit(..., last=True)`` stamps it and closes the recorder
in one step, so a thread the run left behind (a workflow that ignored cancellation, a
broker callback firing late) can never add an event after ``done``; its emits are dropped.

The buffer is bounded: a workflow that emits faster than the pipeline can store would
otherwise grow memory without limit. Past ``max_pending`` buffered events, ``emit`` on a
plain thread waits for the pipeline to take a batch (backpressure). It never waits on a
thread running an event loop (that loop may be the one the pipeline is sending on), and
it stops waiting once the pipeline has not drained for ``MAX_WAIT_S`` (a database
outage must not freeze the run; those events are kept until it recovers).

A ``sampled`` run (``fidelity``) counts most ordinary events instead of stamping them:
``emit`` returns 0 for those, and the last ``flow`` frame is stamped just before ``done``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from .fidelity import ORDINARY

if TYPE_CHECKING:
    from .fidelity import Fidelity

KINDS = frozenset(
    "request response publish route enqueue deliver process ack nack requeue commit "
    "assign revoke rebalance crash retry error done backlog outage flow".split()
)

# (seq, t_ms, kind, actor, message_id, attempt, duplicate, attrs)
EventTuple = tuple[int, float, str, str, str, int, bool, dict]
FIELDS = ("seq", "t_ms", "kind", "actor", "message_id", "attempt", "duplicate", "attrs")
# About 500 bytes an event: tens of MB at most while the pipeline catches up.
MAX_PENDING = 50_000
MAX_WAIT_S = 2.0


def as_dict(event: EventTuple) -> dict[str, Any]:
    return dict(zip(FIELDS, event))


class Waker(Protocol):
    def wake(self, recorder: Recorder) -> None: ...


class Recorder:
    """Per-run event stamper. ``seq`` is gapless from 1 in the order events were emitted."""

    def __init__(self, run_id: int, pipeline: Waker, max_pending: int = MAX_PENDING,
                 fidelity: Fidelity | None = None) -> None:
        self.run_id = run_id
        self.fidelity = fidelity
        self._pipeline = pipeline
        self._lock = threading.Lock()
        # Signalled when the pipeline takes events, for emitters waiting for room.
        self._room = threading.Condition(self._lock)
        self.max_pending = max_pending
        # Set when a wait for room timed out; cleared when a batch is written again.
        self._stalled = False
        self._seq = 0
        self._t0 = time.perf_counter()
        self._pending: list[EventTuple] = []
        self.closed = False
        # Emits refused after the last one, for the log.
        self.dropped = 0
        # Advanced by the pipeline once a batch is both stored and handed to the layer.
        self.written_seq = 0
        self.written = threading.Condition()

    @property
    def seq(self) -> int:
        return self._seq

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000.0

    def emit(
        self,
        kind: str,
        actor: str,
        message_id: str = "",
        attempt: int = 1,
        duplicate: bool = False,
        attrs: dict[str, Any] | None = None,
        *,
        last: bool = False,
    ) -> int:
        """Stamp and buffer one event; its ``seq``, or 0 once the recorder is closed or the event was counted.

        ``last`` closes the recorder in the same step: nothing emitted later is recorded.
        """
        fidelity = self.fidelity
        if fidelity is not None and fidelity.sampling and kind in ORDINARY and \
                fidelity.counts(kind, actor, message_id, attempt, duplicate, attrs):
            return 0
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        with self._lock:
            if self.closed:
                self.dropped += 1
                return 0
            self.closed = last
            # Stamped under the lock so t_ms never runs backwards along seq.
            t_ms = round((time.perf_counter() - self._t0) * 1000.0, 3)
            pending = self._pending
            if last and fidelity is not None:
                # What was counted since the last flow frame, before the log ends.
                final = fidelity.frame(t_ms)
                if final is not None:
                    self._seq += 1
                    pending.append((self._seq, t_ms, "flow", "runner", "", 1, False, final))
            self._seq = seq = self._seq + 1
            pending.append((seq, t_ms, kind, actor, message_id, attempt, duplicate, attrs or {}))
            size = len(pending)
        if size == 1 or last:
            self._pipeline.wake(self)
        elif size >= self.max_pending:
            self._wait_for_room()
        return seq

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _wait_for_room(self) -> None:
        if self._stalled or _on_event_loop():
            return
        self._pipeline.wake(self)
        with self._room:
            if not self._room.wait_for(lambda: len(self._pending) < self.max_pending, MAX_WAIT_S):
                self._stalled = True

    def take(self, limit: int | None = None) -> list[EventTuple]:
        """Hand up to ``limit`` of the oldest buffered events to the pipeline (on its thread)."""
        with self._lock:
            if limit is None or len(self._pending) <= limit:
                batch, self._pending = self._pending, []
            else:
                batch = self._pending[:limit]
                del self._pending[:limit]
            self._room.notify_all()
        return batch

    def put_back(self, batch: list[EventTuple]) -> None:
        """Return a batch the pipeline could not store, ahead of newer events."""
        with self._lock:
            self._pending[:0] = batch

    def mark_written(self, seq: int) -> None:
        self._stalled = False
        with self.written:
            self.written_seq = seq
            self.written.notify_all()

    def wait_written(self, seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.written:
            while self.written_seq < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.written.wait(left)
        return True


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
