"""What a running workflow gets: its parameters, an emitter, cancellation, actions, brokers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .recorder import Recorder
from .transports import Broker, get_broker


class RunCancelled(Exception):
    """Raised inside a workflow when the run was cancelled or ran out of time."""


@dataclass(frozen=True)
class Action:
    name: str
    target: str = ""


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

    def elapsed_ms(self) -> float:
        return self.recorder.elapsed_ms()

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

    def wait_for(self, event: threading.Event, timeout: float, what: str) -> None:
        """Wait for ``event`` with a deadline, waking on cancellation; raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while not event.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            self.check()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")

    def pacer(self, rate: float) -> Pacer:
        return Pacer(self, rate)

    # -- fault injection -----------------------------------------------------------

    def take_action(self, timeout: float = 0.0) -> Action | None:
        try:
            return self.actions.get(timeout=timeout) if timeout > 0 else self.actions.get_nowait()
        except queue.Empty:
            return None

    # -- brokers --------------------------------------------------------------------

    def broker(self, protocol: str, timeout: float = 8.0) -> Broker:
        """The started, reachable broker for ``protocol``; BrokerUnavailable within ``timeout``."""
        broker = get_broker(protocol)
        broker.start()
        broker.check(timeout)
        return broker


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
