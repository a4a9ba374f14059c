"""Run retention: finished runs beyond the newest ``FLOWS_KEEP_RUNS``, or older than ``FLOWS_KEEP_DAYS``, go.

Every event is a row (~150 B each, millions on a busy server), so old runs are deleted
with their events and inbox entries. Events go in chunks of one run's ``seq`` range, each
its own short statement on the (run, seq) index, so the event pipeline's inserts (and, on
SQLite, its single writer lock) are never held up for long. Live runs are never deleted.

``prune_soon`` is the server's periodic prune: called when a run finishes, it starts a
background thread at most once every ``FLOWS_PRUNE_EVERY_S``; ``manage.py pruneruns`` does
the same by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

EVENT_CHUNK = 5000


@dataclass
class PruneReport:
    runs: list[int] = field(default_factory=list)
    events: int = 0
    inbox: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        rate = f" ({self.events / self.seconds:,.0f} events/s)" if self.events and self.seconds > 0 else ""
        return (f"{verb} {len(self.runs)} runs, {self.events} events and {self.inbox} inbox entries "
                f"in {self.seconds:.2f} s{rate}")


def doomed_runs(keep: int, days: float, now: Any = None) -> list[int]:
    """Ids of finished runs past the newest ``keep`` (0 = no limit) or finished more than ``days`` ago (0 = never)."""
    from django.utils import timezone

    from .models import Run

    finished = Run.objects.exclude(state__in=Run.LIVE_STATES)
    doomed: set[int] = set()
    if keep > 0:
        doomed.update(finished.order_by("-id").values_list("id", flat=True)[keep:])
    if days > 0:
        cutoff = (now or timezone.now()) - timedelta(days=days)
        # A finished run without finished_at (failed as an orphan before it was stamped) counts from its creation.
        doomed.update(finished.filter(finished_at__lt=cutoff).values_list("id", flat=True))
        doomed.update(finished.filter(finished_at__isnull=True, created_at__lt=cutoff).values_list("id", flat=True))
    return sorted(doomed)


def prune(keep: int | None = None, days: float | None = None, dry_run: bool = False,
          chunk: int = EVENT_CHUNK) -> PruneReport:
    """Delete what retention says must go (settings unless given); ``dry_run`` only counts it."""
    from django.conf import settings

    from .models import Event, InboxEntry

    keep = settings.FLOWS_KEEP_RUNS if keep is None else keep
    days = settings.FLOWS_KEEP_DAYS if days is None else days
    started = time.perf_counter()
    doomed = doomed_runs(keep, days)
    if dry_run:
        report = PruneReport(runs=doomed, dry_run=True)
        report.events = Event.objects.filter(run_id__in=doomed).count()
        report.inbox = InboxEntry.objects.filter(run_id__in=doomed).count()
    else:
        report = delete_runs(doomed, chunk)
    report.seconds = time.perf_counter() - started
    return report


def delete_runs(run_ids: list[int], chunk: int = EVENT_CHUNK) -> PruneReport:
    """Delete these finished runs with their events and inbox entries; a live one is skipped."""
    from .models import InboxEntry, Run

    started = time.perf_counter()
    report = PruneReport()
    for run_id in run_ids:
        if not Run.objects.filter(pk=run_id).exclude(state__in=Run.LIVE_STATES).exists():
            continue  # live (never deleted) or already gone (a concurrent prune)
        report.events += _delete_events(run_id, chunk)
        report.inbox += InboxEntry.objects.filter(run_id=run_id).delete()[0]
        Run.objects.filter(pk=run_id).exclude(state__in=Run.LIVE_STATES).delete()
        report.runs.append(run_id)
    report.seconds = time.perf_counter() - started
    return report


def _delete_events(run_id: int, chunk: int) -> int:
    from django.db.models import Max

    from .models import Event

    events = Event.objects.filter(run_id=run_id)
    last = events.aggregate(last=Max("seq"))["last"]
    if last is None:
        return 0
    deleted = 0
    for low in range(0, last + 1, chunk):
        # Events have no signals and nothing points at them, so this is one DELETE statement
        # (Django's fast delete): no row is loaded into Python.
        deleted += events.filter(seq__gte=low, seq__lt=low + chunk).delete()[0]
    return deleted


# -- the server's periodic prune ------------------------------------------------------------

_last_started = float("-inf")
_running = False
_lock = threading.Lock()


def prune_soon() -> threading.Thread | None:
    """Start a background prune unless one ran within ``FLOWS_PRUNE_EVERY_S`` (or is running)."""
    global _last_started, _running
    from django.conf import settings

    if settings.FLOWS_KEEP_RUNS <= 0 and settings.FLOWS_KEEP_DAYS <= 0:
        return None
    with _lock:
        now = time.monotonic()
        if _running or now - _last_started < settings.FLOWS_PRUNE_EVERY_S:
            return None
        _last_started, _running = now, True
    thread = threading.Thread(target=_prune_in_background, name="flows-prune", daemon=True)
    thread.start()
    return thread


def _prune_in_background() -> None:
    global _running
    from django.db import connection

    try:
        report = prune()
        if report.runs:
            log.info("retention: %s", report.line())
    except Exception:  # the next finished run tries again
        log.exception("retention: pruning old runs failed")
    finally:
        connection.close()
        with _lock:
            _running = False
