"""What a running workflow gets: its parameters, an emitter, cancellation, actions, brokers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .recorder import NewEvent, Recorder
from .transports import Broker, get_broker

# How long a waiting run thread sleeps between checks at most.
WAIT_STEP_S = 0.05


class RunCancelled(Exception):
    """Raised inside a workflow when the run was cancelled or ran out of time."""


class Outcome:
    """What an action did, in one sentence (``text``) plus what else the asker needs
    (``extra``, e.g. a publish's ``message_id``): set on the run thread once its handler ran."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self.extra: dict[str, Any] = {}
        self.done = threading.Event()
        if text:
            self.done.set()

    def settle(self, reply: str | dict[str, Any]) -> None:
        if isinstance(reply, dict):
            self.extra = {k: v for k, v in reply.items() if k != "result"}
            reply = str(reply.get("result", ""))
        self.text = reply
        self.done.set()


@dataclass(frozen=True)
class Action:
    name: str
    target: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    outcome: Outcome = field(default_factory=Outcome, compare=False)


class RunContext:
    def __init__(self, run_id: int, params: dict[str, Any], recorder: Recorder, namespace: str = "") -> None:
        self.run_id = run_id
        # Broker names start with this (``Run.namespace``): unique across databases sharing a broker.
        self.namespace = namespace or f"run{run_id}"
        self.params = params
        self.recorder = recorder
        self.cancelled = threading.Event()
        self.stop_reason = ""
        # Called once, with the reason, when the run is first cancelled (the runner starts
        # the grace period a workflow gets to stop).
        self.on_cancel: Callable[[str], None] | None = None
        self._cancel_lock = threading.Lock()
        self.actions: queue.Queue[Action] = queue.Queue()
        # Set when an action is queued: a run holding for actions wakes at once, not at its next step.
        self.action_arrived = threading.Event()
        # An interactive run ends by itself after FLOWS_IDLE_S without an action.
        self.last_action_at = time.monotonic()
        self.actions_taken = 0
        # The workflow's tick (dispatches actions), run only on the thread that set it.
        self._tick: Callable[[], None] | None = None
        self._tick_thread = 0

    # -- events ---------------------------------------------------------------------

    def emit(
        self,
        kind: str,
        actor: str,
        message_id: str = "",
        attempt: int = 1,
        duplicate: bool = False,
        **attrs: Any,
    ) -> int:
        return self.recorder.emit(kind, actor, message_id, attempt, duplicate, attrs)

    def traced(self, message_id: str) -> bool:
        """Whether this message's ordinary events are recorded one by one (always, unless the run samples).

        A hot path may skip building the attrs of an untraced message's plain events and
        ``tally`` them instead; anomalies it must still ``emit`` (contracts: "Fidelity").
        """
        fidelity = self.recorder.fidelity
        return fidelity is None or not fidelity.sampling or fidelity.traces(message_id)

    def untraced_test(self) -> Callable[[bytes], bool]:
        """For hot paths: a test, kept for the whole run, true for a message id (UTF-8 bytes) that a
        sampling run certainly does not trace (then ``tally`` its plain events, per batch); false
        means "ask ``traced``". Always false while the run records every event."""
        fidelity = self.recorder.fidelity
        return _never if fidelity is None else fidelity.surely_untraced

    def tally(self, source: str, to: str, kind: str, n: int = 1) -> None:
        """Count ``n`` plain ``kind`` events on the edge ``source → to`` of a sampling run (see ``traced``)."""
        fidelity = self.recorder.fidelity
        if fidelity is None or not fidelity.sampling:
            raise RuntimeError("tally is for runs that sample; emit the events instead")
        fidelity.tally(source, to, kind, n)

    def elapsed_ms(self) -> float:
        return self.recorder.elapsed_ms()

    def emit_many(self, events: list[NewEvent]) -> int:
        """Several events, each ``(kind, actor, message_id, attempt, duplicate, attrs)``, stamped in one step."""
        return self.recorder.emit_many(events)

    # -- cancellation ---------------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """Ask the workflow to stop; the first reason given is the one that counts."""
        with self._cancel_lock:
            if self.cancelled.is_set():
                return
            self.stop_reason = reason
            self.cancelled.set()
        if self.on_cancel is not None:
            self.on_cancel(reason)

    def check(self) -> None:
        if self.cancelled.is_set():
            raise RunCancelled(self.stop_reason or "cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleep that wakes at once on cancellation."""
        if seconds > 0 and self.cancelled.wait(seconds):
            raise RunCancelled(self.stop_reason or "cancelled")
        self.check()

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str,
                   wake: threading.Event | None = None, step: float = WAIT_STEP_S, tend: bool = True,
                   progress: Callable[[], object] | None = None) -> None:
        """Wait until ``predicate()`` holds: the one deadline loop of every workflow.

        Raises RunCancelled on cancellation and TimeoutError naming ``what`` after
        ``timeout`` seconds. Between checks it handles the run's actions (``tend``) and
        sleeps ``step`` at most: woken early by cancellation, or by ``wake`` (an event set on
        progress, cleared here when the progress was not yet enough). ``tend=False`` inside
        an action's own handling, so handlers never nest. With ``progress`` (a figure that changes
        while the awaited work advances) the timeout is how long it may stand still, not in all.
        """
        deadline = time.monotonic() + timeout
        figure = progress() if progress is not None else None
        while not predicate():
            self.check()
            if progress is not None and (now := progress()) != figure:
                figure, deadline = now, time.monotonic() + timeout
            left = deadline - time.monotonic()
            if left <= 0:
                still = " without progress" if progress is not None else ""
                raise TimeoutError(f"timed out after {timeout:g} s{still} waiting for {what}")
            if tend:
                self.tend()
            pause = min(step, left)
            if wake is None:
                self.cancelled.wait(pause)
            elif wake.wait(pause) and not predicate():
                wake.clear()

    def wait_for(self, event: threading.Event, timeout: float, what: str) -> None:
        """Wait for ``event`` with a deadline, waking on cancellation; raise TimeoutError."""
        self.wait_until(event.is_set, timeout, what, wake=event)

    # -- the workflow's tick -----------------------------------------------------------

    def set_tick(self, tick: Callable[[], None] | None) -> None:
        """What ``tend`` runs (the workflow's action dispatch); only ever on the calling thread."""
        self._tick, self._tick_thread = tick, threading.get_ident()

    def tend(self) -> None:
        """Handle what the run was asked to do meanwhile; a no-op off the run thread."""
        if self._tick is not None and threading.get_ident() == self._tick_thread:
            self._tick()

    def pacer(self, rate: float) -> Pacer:
        return Pacer(self, rate)

    # -- fault injection -----------------------------------------------------------

    def ask(self, action: Action) -> None:
        """Queue an action for the run thread (from a web thread) and wake it if it holds."""
        self.actions.put(action)
        self.action_arrived.set()

    def take_action(self) -> Action | None:
        """The next action the user sent, if any (``Workflow.tick`` hands it to its handler)."""
        # The usual answer, asked between every two messages: one read of the queue's deque (atomic
        # under the GIL), no lock taken and no exception raised for it.
        if not self.actions.queue:
            return None
        try:
            taken = self.actions.get_nowait()
        except queue.Empty:
            return None
        self.last_action_at = time.monotonic()
        self.actions_taken += 1
        return taken

    # -- brokers --------------------------------------------------------------------

    def broker(self, protocol: str, timeout: float = 8.0) -> Broker:
        """The started, reachable broker for ``protocol``; BrokerUnavailable within ``timeout``."""
        broker = get_broker(protocol)
        broker.start()
        broker.check(timeout)
        return broker


def _never(_id_bytes: bytes) -> bool:
    return False


class Pacer:
    """Spaces messages at ``rate`` per second (0 = as fast as possible), interruptibly."""

    def __init__(self, ctx: RunContext, rate: float) -> None:
        self.ctx = ctx
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if self.interval:
            delay = self.next_at - time.monotonic()
            if delay > 0:
                self.ctx.sleep(delay)
            self.next_at = max(self.next_at + self.interval, time.monotonic() - self.interval)
        self.ctx.check()
        self.ctx.tend()
