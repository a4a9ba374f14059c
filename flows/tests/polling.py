"""Waiting in tests: every wait has a condition and a deadline, and says what it waited for.

``wait_for_events`` wakes when the pipeline stores a batch of the run (the recorder's
``written`` condition), so a test sees an event as soon as the store has it; ``poll`` and
``wait_until`` poll anything else (a subprocess, an HTTP server, a list a hook fills) with
a deadline. Nothing sleeps to synchronise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
STEP_S = 0.02


def poll(probe: Callable[[], T], timeout: float, what: str, step: float = STEP_S) -> T:
    """``probe()``'s first truthy answer; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)  # polling with a deadline, not synchronising


def wait_until(predicate: Callable[[], object], timeout: float, what: str, step: float = STEP_S) -> float:
    """Poll ``predicate`` until true; the seconds it took."""
    began = time.monotonic()
    poll(predicate, timeout, what, step)
    return time.monotonic() - began


def wait_for_events(run_id: int, predicate: Callable[[list[dict[str, Any]]], object], timeout: float,
                    what: str) -> list[dict[str, Any]]:
    """The run's stored events, once ``predicate(events)`` holds.

    While the run is live this wakes on each batch the pipeline stores for it; before it is
    tracked and after it finished the store is polled.
    """
    from flows import eventstore
    from flows.pipeline import get_pipeline

    deadline = time.monotonic() + timeout
    while True:
        tracked = get_pipeline().tracked(run_id)
        recorder = tracked.recorder if tracked is not None else None
        mark = recorder.written_seq if recorder is not None else 0  # read before the store
        events = eventstore.read_events(run_id, 0, 1_000_000)
        if predicate(events):
            return events
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        if recorder is None:
            time.sleep(min(STEP_S, left))  # polling with a deadline, not synchronising
        else:
            wait_written_past(recorder, mark, min(left, 1.0))


def wait_written_past(recorder: Any, seq: int, timeout: float) -> None:
    """Until the pipeline has stored something of ``recorder``'s after ``seq`` (or ``timeout``)."""
    with recorder.written:
        recorder.written.wait_for(lambda: recorder.written_seq > seq, timeout)
