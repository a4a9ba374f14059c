"""Stamping events: the cheap part that runs on the emitting thread or coroutine.

Broker callbacks are synchronous and Channels is asynchronous, so ``emit`` must be safe
and cheap from both: it takes one lock, stamps ``seq`` and ``t_ms``, appends a tuple and,
only when the buffer was empty, wakes the pipeline. Everything slow (JSON, SQL, the
channel layer) happens later on the pipeline's own thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

KINDS = frozenset(
    "request response publish route enqueue deliver process ack nack requeue commit "
    "assign revoke rebalance crash retry error done".split()
)

# (seq, t_ms, kind, actor, message_id, attempt, duplicate, attrs)
EventTuple = tuple[int, float, str, str, str, int, bool, dict]
FIELDS = ("seq", "t_ms", "kind", "actor", "message_id", "attempt", "duplicate", "attrs")


def as_dict(event: EventTuple) -> dict[str, Any]:
    return dict(zip(FIELDS, event))


class Waker(Protocol):
    def wake(self, recorder: Recorder) -> None: ...


class Recorder:
    """Per-run event stamper. ``seq`` is gapless from 1 in the order events were emitted."""

    def __init__(self, run_id: int, pipeline: Waker) -> None:
        self.run_id = run_id
        self._pipeline = pipeline
        self._lock = threading.Lock()
        self._seq = 0
        self._t0 = time.perf_counter()
        self._pending: list[EventTuple] = []
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
    ) -> int:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        with self._lock:
            self._seq = seq = self._seq + 1
            # Stamped under the lock so t_ms never runs backwards along seq.
            t_ms = round((time.perf_counter() - self._t0) * 1000.0, 3)
            pending = self._pending
            pending.append((seq, t_ms, kind, actor, message_id, attempt, duplicate, attrs or {}))
            first = len(pending) == 1
        if first:
            self._pipeline.wake(self)
        return seq

    def take(self) -> list[EventTuple]:
        """Hand the buffered events to the pipeline (called on its thread)."""
        with self._lock:
            batch, self._pending = self._pending, []
        return batch

    def put_back(self, batch: list[EventTuple]) -> None:
        """Return a batch the pipeline could not store, ahead of newer events."""
        with self._lock:
            self._pending[:0] = batch

    def mark_written(self, seq: int) -> None:
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
