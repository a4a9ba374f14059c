"""The event pipeline: one background thread that stores and streams recorded events.

Order matters: a batch is written to the database *before* it goes to the channel layer,
so a WebSocket client that notices a gap by ``seq`` can always fill it from the database.

Channel layers are event-loop bound. ``InMemoryChannelLayer`` keeps its queues on the
server's loop and does not notice a ``group_send`` made from another loop until that loop
wakes for something else, so batches are sent *on* the server's loop
(``run_coroutine_threadsafe``) once a consumer has told us which loop that is. Without a
server loop (``manage.py runflow``) a private loop serves layers that cross processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection

from . import eventstore
from .recorder import FIELDS, Recorder
from .summary import SummaryBuilder

log = logging.getLogger(__name__)

MAX_BATCH = 2000
LINGER_S = 0.005
SUMMARY_EVERY_S = 0.5
SEND_TIMEOUT_S = 5.0


def group_name(run_id: int) -> str:
    return f"run-{run_id}"


class TrackedRun:
    """What the pipeline keeps per run: its recorder, summary builder and hooks."""

    def __init__(self, recorder: Recorder, summary_extra: Callable[[], dict[str, Any]] | None) -> None:
        self.recorder = recorder
        self.builder = SummaryBuilder()
        self.summary_extra = summary_extra
        self.last_summary_at = 0.0
        self.failures = 0


class EventPipeline:
    def __init__(self, layer_factory: Callable[[], Any] | None = None) -> None:
        self._layer_factory = layer_factory
        self._layer: Any = None
        self._runs: dict[int, TrackedRun] = {}
        self._dirty: set[int] = set()
        self._summaries: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._private_loop: asyncio.AbstractEventLoop | None = None

    # -- wiring -------------------------------------------------------------------------

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by consumers: the loop that owns the channel layer's queues."""
        self._server_loop = loop

    def track(self, recorder: Recorder, summary_extra: Callable[[], dict[str, Any]] | None = None) -> TrackedRun:
        tracked = TrackedRun(recorder, summary_extra)
        with self._lock:
            self._runs[recorder.run_id] = tracked
        self._ensure_thread()
        return tracked

    def untrack(self, run_id: int) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            self._dirty.discard(run_id)

    def tracked(self, run_id: int) -> TrackedRun | None:
        return self._runs.get(run_id)

    def wake(self, recorder: Recorder) -> None:
        # Under the lock: the pipeline swaps the dirty set, and a run added to the old set
        # after the swap would sit unflushed until its next emit.
        with self._lock:
            self._dirty.add(recorder.run_id)
        self._wakeup.set()

    def flush(self, recorder: Recorder, timeout: float = 10.0) -> bool:
        """Block until every event emitted so far is stored and streamed."""
        target = recorder.seq
        self.wake(recorder)
        return recorder.wait_written(target, timeout)

    def publish_summary(self, run_id: int, summary: dict[str, Any]) -> None:
        """Queue a summary for streaming; only the pipeline thread touches the layer."""
        with self._lock:
            self._summaries[run_id] = summary
        self._ensure_thread()
        self._wakeup.set()

    # -- the thread ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop_forever, name="event-pipeline", daemon=True)
                self._thread.start()

    def _loop_forever(self) -> None:
        while True:
            self._wakeup.wait(1.0)
            self._wakeup.clear()
            # A short linger turns bursts into one batch instead of many tiny ones.
            time.sleep(LINGER_S)
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                runs = [self._runs[r] for r in dirty if r in self._runs]
                summaries, self._summaries = self._summaries, {}
            for tracked in runs:
                try:
                    self._drain(tracked)
                except Exception:  # noqa: BLE001 - keep the pipeline alive; the batch was put back
                    log.exception("event pipeline failed for run %s", tracked.recorder.run_id)
                    tracked.failures += 1
                    close_old_connections()
                    time.sleep(min(2.0, 0.05 * tracked.failures))
                    self.wake(tracked.recorder)
            for run_id, summary in summaries.items():
                self._send(run_id, {"type": "run.summary", "summary": summary})
            if not self._runs:
                # Idle: hold no database connection (a test database can then be dropped).
                connection.close()

    def _drain(self, tracked: TrackedRun) -> None:
        recorder = tracked.recorder
        batch = recorder.take()
        while batch:
            chunk, rest = batch[:MAX_BATCH], batch[MAX_BATCH:]
            try:
                eventstore.write_batch(recorder.run_id, chunk)
            except Exception:
                recorder.put_back(batch)
                raise
            tracked.failures = 0
            events = [dict(zip(FIELDS, e)) for e in chunk]
            for event in events:
                tracked.builder.feed(event)
            text = '{"type":"events","events":' + json.dumps(events, separators=(",", ":")) + "}"
            self._send(
                recorder.run_id,
                {"type": "run.events", "first": chunk[0][0], "last": chunk[-1][0], "text": text},
            )
            recorder.mark_written(chunk[-1][0])
            batch = rest or recorder.take()
        now = time.monotonic()
        if tracked.summary_extra and now - tracked.last_summary_at >= SUMMARY_EVERY_S:
            tracked.last_summary_at = now
            self._send(recorder.run_id, {"type": "run.summary", "summary": tracked.summary_extra()})

    # -- the channel layer --------------------------------------------------------------

    def _get_layer(self) -> Any:
        if self._layer is None:
            if self._layer_factory is not None:
                self._layer = self._layer_factory()
            else:
                from channels.layers import get_channel_layer

                self._layer = get_channel_layer()
        return self._layer

    def _send(self, run_id: int, message: dict[str, Any]) -> None:
        layer = self._get_layer()
        if layer is None:
            return
        coro = layer.group_send(group_name(run_id), message)
        loop = self._server_loop
        if loop is not None and loop.is_running() and not _on_loop(loop):
            future = asyncio.run_coroutine_threadsafe(coro, loop)
            try:
                future.result(SEND_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - clients fill gaps from the database
                log.warning("channel layer send for run %s failed or timed out", run_id, exc_info=True)
            return
        if loop is not None and not loop.is_running():
            self._server_loop = None
        if self._private_loop is None:
            self._private_loop = asyncio.new_event_loop()
        try:
            self._private_loop.run_until_complete(coro)
        except Exception:  # noqa: BLE001 - clients fill gaps from the database
            log.warning("channel layer send for run %s failed", run_id, exc_info=True)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


_pipeline: EventPipeline | None = None
_pipeline_lock = threading.Lock()


def get_pipeline() -> EventPipeline:
    """The process-wide pipeline, built on first use."""
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            _pipeline = EventPipeline()
        return _pipeline
