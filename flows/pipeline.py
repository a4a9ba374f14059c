"""The event pipeline: one background thread that stores and streams recorded events.

Order matters: a batch is written to the database *before* it goes to the channel layer,
so a WebSocket client that notices a gap by ``seq`` can always fill it from the database.

Channel layers are event-loop bound. ``InMemoryChannelLayer`` keeps its queues on the
server's loop and does not notice a ``group_send`` made from another loop until that loop
wakes for something else, so batches are sent *on* the server's loop once a consumer has
told us which loop that is. Without a server loop (``manage.py runflow``) a private loop
serves layers that cross processes.

The thread does not wait for each send: a ``LoopSender`` pumps messages on the server
loop in order while the thread stores the next batch, with a small bound on messages in
flight so a busy loop slows the pipeline down (its batches grow) instead of queueing
without limit. Batches linger a few milliseconds when events trickle in (a click shows at
once) and longer when a run is hot, so busy runs send fewer, larger frames to every client.
The latest stored batches of each live run stay in memory, as sent, so a client that fell
a little behind catches up without re-reading the database.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connections

from . import eventstore
from .lazy import Lazy
from .recorder import FIELDS, Recorder
from .summary import SummaryBuilder

log = logging.getLogger(__name__)

MAX_BATCH = 2000
# WebSocket servers close a connection whose frame is over their limit (daphne: 1 MiB):
# a batch's frame is split well below it.
MAX_FRAME_BYTES = 256 * 1024
# How long a wake-up waits for more events before storing a batch. It grows with the
# event rate (LINGER_PER_EVENT_S per event/s): every frame costs each client and the
# server a fixed amount, and every batch the pipeline a fixed 0.3–0.8 ms of CPU (a
# transaction, the summary, the send) whatever its size, so a hot run sends fewer, larger
# frames, while a trickle (a click in the UI) still shows within a few milliseconds. The
# cap is reached at 5,000 events/s: a sync workflow at full speed (grpc-person, four
# events a call) lands there, and a 6 ms linger made it batches of 30 events that spent
# about half the pipeline's time on that fixed cost (bench/bench_grpc.py).
LINGER_S = 0.005
MAX_LINGER_S = 0.025
LINGER_PER_EVENT_S = 0.000005
# Keep draining without a linger only while this many events wait (the pipeline is behind).
KEEP_DRAINING = MAX_BATCH // 2
SUMMARY_EVERY_S = 0.5
SEND_TIMEOUT_S = 5.0
# Channel-layer messages handed to the server loop and not yet sent.
MAX_IN_FLIGHT = 4
# Events of each live run kept in memory (as sent) for clients catching up.
RECENT_EVENTS = 50_000


def group_name(run_id: int) -> str:
    return f"run-{run_id}"


def linger_s(rate: float) -> float:
    """How long a wake-up waits for more events when they arrive at ``rate`` a second."""
    return min(MAX_LINGER_S, max(LINGER_S, rate * LINGER_PER_EVENT_S))


class TrackedRun:
    """What the pipeline keeps per run: its recorder, summary builder, hooks and recent batches."""

    def __init__(self, recorder: Recorder, summary_extra: Callable[[], dict[str, Any]] | None) -> None:
        self.recorder = recorder
        self.builder = SummaryBuilder()
        self.summary_extra = summary_extra
        self.last_summary_at = 0.0
        self.failures = 0
        # (first, last, text) of the latest stored batches, so a client that fell a little
        # behind catches up from memory instead of re-reading and re-encoding the database.
        self.recent: collections.deque[tuple[int, int, str]] = collections.deque()
        self._recent_events = 0

    def remember(self, first: int, last: int, text: str) -> None:
        self.recent.append((first, last, text))
        self._recent_events += last - first + 1
        while self._recent_events > RECENT_EVENTS and len(self.recent) > 1:
            old_first, old_last, _ = self.recent.popleft()
            self._recent_events -= old_last - old_first + 1

    def recent_batch(self, after: int) -> tuple[int, int, str] | None:
        """The stored batch holding ``after + 1`` if it is still in memory."""
        batches = list(self.recent)  # one C-level copy: the pipeline thread appends meanwhile
        index = bisect.bisect_right(batches, after + 1, key=lambda b: b[0]) - 1
        if index < 0 or batches[index][1] <= after:
            return None
        return batches[index]


class LoopSender:
    """Sends channel-layer messages on a running event loop, in order, without blocking the caller.

    ``put`` (any thread) queues a message; one pump task on the loop sends them one by one.
    At most ``MAX_IN_FLIGHT`` messages wait, so a loop that falls behind makes ``put`` wait
    rather than letting the queue grow. A loop that stopped gets nothing new.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, layer: Any) -> None:
        self.loop = loop
        self.layer = layer
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._changed = threading.Condition()
        self._pumping = False
        self._task: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.loop.is_running()

    def put(self, group: str, message: dict[str, Any], timeout: float = SEND_TIMEOUT_S) -> bool:
        """Queue ``message``; False if the loop stopped or stayed too busy to take it."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._queue) < MAX_IN_FLIGHT or not self.alive, timeout):
                return False
            if not self.alive:
                return False
            self._queue.append((group, message))
            start = not self._pumping
            self._pumping = True
        if start:
            try:
                self.loop.call_soon_threadsafe(self._start_pump)
            except RuntimeError:  # the loop closed between the check and the call
                self._drop_all()
                return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue or not self.alive, timeout)

    def _start_pump(self) -> None:
        self._task = self.loop.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                with self._changed:
                    if not self._queue:
                        self._pumping = False
                        return
                    group, message = self._queue[0]
                try:
                    await self.layer.group_send(group, message)
                except Exception:  # clients fill gaps from the database
                    log.warning("channel layer send to %s failed", group, exc_info=True)
                with self._changed:
                    self._queue.popleft()
                    self._changed.notify_all()
                # Let the consumers run between batches rather than after all of them.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._drop_all()
            raise

    def _drop_all(self) -> None:
        with self._changed:
            if self._queue:
                log.warning("dropped %d channel-layer messages: the server loop went away", len(self._queue))
            self._queue.clear()
            self._pumping = False
            self._changed.notify_all()


class EventPipeline:
    def __init__(self, layer_factory: Callable[[], Any] | None = None) -> None:
        self._layer_factory = layer_factory
        self._layer: Any = None
        self._runs: dict[int, TrackedRun] = {}
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._sender: LoopSender | None = None
        self._private_loop: asyncio.AbstractEventLoop | None = None
        self._private_lock = threading.Lock()
        self._rate = 0.0  # events/s drained, smoothed

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

    def recent_batch(self, run_id: int, after: int) -> tuple[int, int, str] | None:
        """``(first, last, text)`` of the stored batch holding ``after + 1``, if still in memory."""
        tracked = self._runs.get(run_id)
        return tracked.recent_batch(after) if tracked is not None else None

    def wake(self, recorder: Recorder) -> None:
        # Under the lock: the pipeline swaps the dirty set, and a run added to the old set
        # after the swap would sit unflushed until its next emit.
        with self._lock:
            self._dirty.add(recorder.run_id)
        self._wakeup.set()

    def flush(self, recorder: Recorder, timeout: float = 10.0) -> bool:
        """Block until every event emitted so far is stored and handed to the channel layer.

        True once stored; the wait for the server loop to finish sending is bounded by
        the same timeout but does not decide the answer (clients can read the database).
        """
        deadline = time.monotonic() + timeout
        target = recorder.seq
        self.wake(recorder)
        stored = recorder.wait_written(target, timeout)
        sender = self._sender
        if stored and sender is not None and not _on_loop(sender.loop):  # that loop must keep running to send
            sender.wait_idle(max(0.0, deadline - time.monotonic()))
        return stored

    def publish_summary(self, run_id: int, summary: dict[str, Any]) -> None:
        self._send(run_id, {"type": "run.summary", "summary": summary})

    # -- the thread ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._lock:
            stopping = self._thread if self._stopping else None
        if stopping is not None and stopping is not threading.current_thread():
            stopping.join()  # one thread at a time: a stopping one finishes its pass first
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._loop_forever, name="event-pipeline", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread after its current pass (what is buffered stays buffered); True once it has.

        A later ``track`` starts a new thread.
        """
        with self._lock:
            thread = self._thread
            self._stopping = True
        self._wakeup.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _loop_forever(self) -> None:
        previous = time.monotonic()
        while not self._stopping:
            self._wakeup.wait(1.0)
            if self._stopping:
                break
            self._wakeup.clear()
            # A linger turns bursts into one batch instead of many tiny ones.
            time.sleep(self._linger())
            started = time.monotonic()
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                runs = [self._runs[r] for r in dirty if r in self._runs]
            drained = 0
            for tracked in runs:
                try:
                    drained += self._drain(tracked)
                except Exception:  # keep the pipeline alive; the batch was put back
                    log.exception("event pipeline failed for run %s", tracked.recorder.run_id)
                    tracked.failures += 1
                    close_old_connections()
                    time.sleep(min(2.0, 0.05 * tracked.failures))
                    self.wake(tracked.recorder)
            self._rate = 0.5 * self._rate + 0.5 * drained / max(1e-3, started - previous)
            previous = started
        # Stopped: this thread's database connection goes with it (a test database can then be dropped).
        connections.close_all()

    def _linger(self) -> float:
        """How long this wake-up gathers events: longer the hotter the runs are.

        A run that samples is hot by definition (too fast to follow one by one) even though
        it records few events (its sample, its anomalies, its flow frames): those gather for
        the longest linger instead of each costing a store and a frame of its own.
        """
        with self._lock:
            tracked = [self._runs[r] for r in self._dirty if r in self._runs]
        if any(t.recorder.fidelity is not None and t.recorder.fidelity.sampling for t in tracked):
            return MAX_LINGER_S
        return linger_s(self._rate)

    def _drain(self, tracked: TrackedRun) -> int:
        """Store and stream what the run has buffered; returns how many events that was."""
        recorder = tracked.recorder
        drained = 0
        while chunk := recorder.take(MAX_BATCH):
            batch = eventstore.encode_batch(chunk)
            try:
                eventstore.write_batch(recorder.run_id, batch)
            except Exception:
                recorder.put_back(chunk)
                raise
            tracked.failures = 0
            drained += len(chunk)
            events = [dict(zip(FIELDS, event)) for event in chunk]
            # Published before ``mark_written``: whoever waited for these events to be
            # stored (the runner's final summary) then sees them counted.
            tracked.builder.feed_batch(events)
            for first, last, text in _frames(events, batch):
                tracked.remember(first, last, text)
                self._send(recorder.run_id, {"type": "run.events", "first": first, "last": last, "text": text})
            recorder.mark_written(chunk[-1][0])
            if recorder.pending < KEEP_DRAINING:
                # Not behind: let the next batch gather (linger) rather than send a small one now.
                if recorder.pending:
                    self.wake(recorder)
                break
        now = time.monotonic()
        if tracked.summary_extra and now - tracked.last_summary_at >= SUMMARY_EVERY_S:
            tracked.last_summary_at = now
            self.publish_summary(recorder.run_id, tracked.summary_extra())
        return drained

    # -- the channel layer --------------------------------------------------------------

    def _get_layer(self) -> Any:
        if self._layer_factory is None:
            from channels.layers import get_channel_layer

            # Asked each time (a dict lookup): Channels rebuilds its layers when the
            # CHANNEL_LAYERS setting changes, and consumers then use the new one.
            return get_channel_layer()
        if self._layer is None:
            self._layer = self._layer_factory()
        return self._layer

    def _send(self, run_id: int, message: dict[str, Any]) -> None:
        layer = self._get_layer()
        if layer is None:
            return
        loop = self._server_loop
        if loop is not None and loop.is_running() and not _on_loop(loop):
            sender = self._sender
            if sender is None or sender.loop is not loop or sender.layer is not layer:
                sender = self._sender = LoopSender(loop, layer)
            if not sender.put(group_name(run_id), message):
                log.warning("channel layer send for run %s dropped: the server loop is stuck or gone", run_id)
            return
        if loop is not None and not loop.is_running():
            self._server_loop = None
        with self._private_lock:
            if self._private_loop is None:
                self._private_loop = asyncio.new_event_loop()
            try:
                self._private_loop.run_until_complete(layer.group_send(group_name(run_id), message))
            except Exception:  # clients fill gaps from the database
                log.warning("channel layer send for run %s failed", run_id, exc_info=True)


def _frames(events: list[dict[str, Any]], batch: eventstore.Batch) -> list[tuple[int, int, str]]:
    """``(first, last, text)`` WebSocket frames of a stored batch, each under MAX_FRAME_BYTES.

    Almost always one frame; a batch of events with big attrs is halved until its parts
    fit (a single event is sent whole, whatever its size).
    """
    text = '{"type":"events","events":' + eventstore.batch_json(events, batch, batch.attrs_json) + "}"
    if utf8_len(text) <= MAX_FRAME_BYTES or len(events) == 1:
        return [(events[0]["seq"], events[-1]["seq"], text)]
    half = len(events) // 2
    left, right = eventstore.Batch(batch[:half]), eventstore.Batch(batch[half:])
    left.attrs_json, right.attrs_json = batch.attrs_json[:half], batch.attrs_json[half:]
    return _frames(events[:half], left) + _frames(events[half:], right)


def utf8_len(text: str) -> int:
    # isascii() is O(1) on CPython's compact strings; only non-ASCII text pays for encoding.
    return len(text) if text.isascii() else len(text.encode())


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


_pipeline: Lazy[EventPipeline] = Lazy(EventPipeline)


def get_pipeline() -> EventPipeline:
    """The process-wide pipeline, built on first use (``FlowsConfig`` owns it: flows/apps.py)."""
    return _pipeline.get()


def stop_pipeline(timeout: float = 5.0) -> None:
    """Stop the process-wide pipeline's thread, if there is one; the next run starts it again."""
    pipeline = _pipeline.peek()
    if pipeline is not None:
        pipeline.stop(timeout)
