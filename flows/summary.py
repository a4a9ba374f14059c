"""The run summary's numbers, computed from events alone.

The same builder runs incrementally on the pipeline thread for live runs and over the
stored events for any other, so the counters always agree with the event log. The
browser derives its counters with the same rules (static/js/run-model.js).

Rules (docs/contracts.md, "Run summary"):
- published: ``publish`` and ``request`` events of first attempts (a re-send is ``retry``);
- delivered: ``deliver`` events, duplicates included; duplicates: those marked duplicate;
- processed: ``process`` events; effects: ``process`` events whose ``effect`` attr is not
  false (an idempotent consumer marks a suppressed duplicate ``effect: false``);
- lost: reported by the workflow on its ``done`` event after checking with the broker;
- latency: every event may carry ``perceived_ms`` and/or ``end_to_end_ms``.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (50, 95, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method)."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    rank = (p / 100.0) * (n - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def latency_stats(values: Iterable[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    stats: dict[str, float | None] = {f"p{p}": _round(percentile(ordered, p)) for p in PERCENTILES}
    stats["max"] = _round(ordered[-1]) if ordered else None
    stats["count"] = len(ordered)
    return stats


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class SummaryBuilder:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.published = 0
        self.delivered = 0
        self.duplicates = 0
        self.processed = 0
        self.effects = 0
        self.responses = 0
        self.first_processed = 0
        self.lost = 0
        self.errors = 0
        self.last_seq = 0
        self.last_t_ms = 0.0
        self.perceived = array("d")
        self.end_to_end = array("d")

    def feed(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        attrs = event["attrs"]
        duplicate = event["duplicate"]
        self.kinds[kind] += 1
        self.last_seq = event["seq"]
        self.last_t_ms = event["t_ms"]
        if kind in ("publish", "request"):
            if event["attempt"] == 1 and not duplicate:
                self.published += 1
        elif kind == "deliver":
            self.delivered += 1
            if duplicate:
                self.duplicates += 1
        elif kind == "process":
            self.processed += 1
            if attrs.get("effect", True) is not False:
                self.effects += 1
        elif kind == "error":
            self.errors += 1
        elif kind == "done":
            self.lost = int(attrs.get("lost", 0) or 0)
        if not duplicate:
            if kind == "response":
                self.responses += 1
            elif kind == "process":
                self.first_processed += 1
        if attrs:
            value = attrs.get("perceived_ms")
            if value is not None:
                self.perceived.append(float(value))
            value = attrs.get("end_to_end_ms")
            if value is not None:
                self.end_to_end.append(float(value))

    def feed_all(self, events: Iterable[dict[str, Any]]) -> SummaryBuilder:
        for event in events:
            self.feed(event)
        return self

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": {
                "published": self.published,
                "delivered": self.delivered,
                "processed": self.processed,
                "effects": self.effects,
                "duplicates": self.duplicates,
                "lost": self.lost,
                "errors": self.errors,
                "events": self.last_seq,
            },
            "kinds": dict(self.kinds),
            # Sync runs complete with responses, async ones with first processings.
            "completed": {"response": self.responses, "process": self.first_processed},
            "latency_ms": {
                "perceived": latency_stats(self.perceived),
                "end_to_end": latency_stats(self.end_to_end),
            },
            "last_seq": self.last_seq,
            "elapsed_ms": self.last_t_ms,
        }
