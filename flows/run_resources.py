"""What a run leaves on a broker, and taking it away when the run ends.

A broker keeps whatever a run created (an embedded Tansu holds every record of every topic
in memory) until someone deletes it. So a workflow registers each such resource here the
moment it creates it (``track``), and the runner calls ``release`` once the workflow has
returned, whichever way it ended: success, failure or cancellation. ``release`` first asks
each resource for the broker's own numbers the summary and the tests rely on (end offsets,
committed offsets, ...), then deletes it; the numbers are kept in the run's result under
``broker_at_end``.

One registry for every protocol, so the "on every path" rule lives in one place (the
runner) and not in each workflow's ``finally``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

# A dead broker must not hold a finished run back for long: every resource of a run shares this.
RELEASE_BUDGET_S = 8.0
RESULT_KEY = "broker_at_end"


class RunResource(Protocol):
    """Something a run created on a broker."""

    # Where its figures go in ``result["broker_at_end"]``, e.g. "kafka".
    key: str

    def capture(self, timeout: float) -> dict[str, Any]:
        """The broker's own numbers about the resource, read before it is deleted."""

    def delete(self, timeout: float) -> None:
        """Remove it from the broker; deleting what is already gone is not an error."""


_tracked: dict[int, list[RunResource]] = {}
_lock = threading.Lock()


def track(run_id: int, resource: RunResource) -> RunResource:
    with _lock:
        _tracked.setdefault(run_id, []).append(resource)
    return resource


def tracked(run_id: int) -> list[RunResource]:
    with _lock:
        return list(_tracked.get(run_id, ()))


def release(run_id: int, budget_s: float = RELEASE_BUDGET_S) -> dict[str, Any]:
    """Capture each of the run's resources, then delete it (newest first); figures by key.

    Never raises: a resource that cannot be read or deleted is logged and its error kept
    beside its figures, so a broker that died does not turn a finished run into a crash.
    """
    with _lock:
        resources = _tracked.pop(run_id, [])
    deadline = time.monotonic() + budget_s
    figures: dict[str, Any] = {}
    for resource in reversed(resources):
        entry: dict[str, Any] = {}
        try:
            entry.update(resource.capture(_left(deadline)))
        except Exception as exc:  # noqa: BLE001 - reported beside the figures
            log.warning("run %s: could not read %s before deleting it: %s", run_id, resource.key, exc)
            entry["capture_error"] = f"{type(exc).__name__}: {exc}"
        try:
            resource.delete(_left(deadline))
            entry["deleted"] = True
        except Exception as exc:  # noqa: BLE001
            log.warning("run %s: could not delete %s: %s", run_id, resource.key, exc)
            entry["deleted"] = False
            entry["delete_error"] = f"{type(exc).__name__}: {exc}"
        figures[resource.key] = entry
    return figures


def release_into(run_id: int, result: dict[str, Any]) -> dict[str, Any]:
    """``release`` the run's resources and keep their figures in ``result`` (returned, not copied)."""
    figures = release(run_id)
    if figures:
        result[RESULT_KEY] = figures
    return result


def _left(deadline: float) -> float:
    # Even past the budget each step gets a moment, so a live broker still gets its deletes.
    return max(1.0, deadline - time.monotonic())
