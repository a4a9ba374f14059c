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
- completed: responses (sync) and first processings (async) that are not duplicates;
  planned: those of them whose ``planned`` attr is not false, i.e. the completions of the
  workflow's plan, which ``expected`` counts: the run's progress (never above expected);
- latency: every event may carry ``perceived_ms`` and/or ``end_to_end_ms``;
- ``flow`` events (a sampled run, contracts "Fidelity"): each edge's ``count`` (never its
  ``total``) adds to its kind as if that many plain events had been recorded: first attempts,
  not duplicates, effect and plan as usual. Latency then comes from the recorded events
  only (``latency_ms.sampled``); ``fidelity`` says which mode was on, why, and from which seq.

Threads: one thread feeds a builder (the pipeline's, batch by batch) while request and
WebSocket threads read it. Readers never look at the counters being fed: ``publish``
(the feeder, once per batch) freezes them into an immutable ``Figures`` and swaps one
reference, and ``snapshot`` reads that reference. Latency percentiles are not frozen per
batch (sorting a run's whole latency array per batch would cost more than storing it):
the latency arrays are append-only, so a ``Figures`` keeps how many values it covers and
a reader sorts exactly that prefix, once per prefix length.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Figures:
    """The builder's numbers at one point of the log; never changes once published."""

    counts: dict[str, int]
    kinds: dict[str, int]
    completed: dict[str, int]
    planned: dict[str, int]
    last_seq: int
    elapsed_ms: float
    perceived: array
    end_to_end: array
    perceived_n: int
    end_to_end_n: int
    fidelity: dict[str, Any] = field(default_factory=dict)
    _latency: dict[str, Any] = field(default_factory=dict, compare=False)

    def latency(self) -> dict[str, dict[str, float | None]]:
        cached = self._latency.get("stats")
        if cached is None:
            # A slice is one C-level copy, safe while the feeder appends beyond it.
            cached = self._latency["stats"] = {
                "perceived": latency_stats(self.perceived[: self.perceived_n]),
                "end_to_end": latency_stats(self.end_to_end[: self.end_to_end_n]),
            }
        return cached

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "kinds": dict(self.kinds),
            # Sync runs complete with responses, async ones with first processings.
            "completed": dict(self.completed),
            # The completions the workflow planned: progress.done (a delivery it did not plan is no progress).
            "planned": dict(self.planned),
            "latency_ms": {**{name: dict(stats) for name, stats in self.latency().items()},
                           "sampled": self.fidelity["counted"] > 0},
            "fidelity": dict(self.fidelity),
            "last_seq": self.last_seq,
            "elapsed_ms": self.elapsed_ms,
        }


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
        self.planned = {"response": 0, "process": 0}
        self.lost = 0
        self.errors = 0
        self.last_seq = 0
        self.last_t_ms = 0.0
        self.perceived = array("d")
        self.end_to_end = array("d")
        self.fidelity: dict[str, Any] = {"mode": "full", "why": "", "switched_at_seq": None, "counted": 0}
        self._figures = self._freeze()

    def feed(self, event: dict[str, Any]) -> None:
        """Count one event (feeder thread only; readers see it after the next ``publish``)."""
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
        elif kind == "flow":
            self._flow(event["seq"], attrs)
        if not duplicate:
            if kind == "response":
                self.responses += 1
            elif kind == "process":
                self.first_processed += 1
            if kind in self.planned and attrs.get("planned", True) is not False:
                self.planned[kind] += 1
        if attrs:
            value = attrs.get("perceived_ms")
            if value is not None:
                self.perceived.append(float(value))
            value = attrs.get("end_to_end_ms")
            if value is not None:
                self.end_to_end.append(float(value))

    def _flow(self, seq: int, attrs: dict[str, Any]) -> None:
        for edge in attrs.get("edges") or ():
            self._add_plain(edge["kind"], int(edge["count"]))
        if attrs.get("why"):
            fidelity = self.fidelity = {**self.fidelity, "mode": attrs.get("mode", "sampled"), "why": attrs["why"]}
            if fidelity["mode"] == "sampled" and fidelity["switched_at_seq"] is None:
                fidelity["switched_at_seq"] = seq
        counted = int(attrs.get("counted") or 0)
        if counted > self.fidelity["counted"]:
            self.fidelity = {**self.fidelity, "counted": counted}

    def _add_plain(self, kind: str, n: int) -> None:
        """``n`` counted events of ``kind``: first attempts, not duplicates, effect and plan kept."""
        self.kinds[kind] += n
        if kind in ("publish", "request"):
            self.published += n
        elif kind == "deliver":
            self.delivered += n
        elif kind == "process":
            self.processed += n
            self.effects += n
            self.first_processed += n
            self.planned["process"] += n
        elif kind == "response":
            self.responses += n
            self.planned["response"] += n

    def feed_batch(self, events: Iterable[dict[str, Any]]) -> SummaryBuilder:
        """Count a batch, then publish the figures for readers on other threads."""
        feed = self.feed
        for event in events:
            feed(event)
        self.publish()
        return self

    feed_all = feed_batch

    def publish(self) -> None:
        self._figures = self._freeze()

    def figures(self) -> Figures:
        """The latest published figures (any thread)."""
        return self._figures

    def snapshot(self) -> dict[str, Any]:
        """The latest published figures as the summary's fields (any thread)."""
        return self._figures.as_dict()

    def _freeze(self) -> Figures:
        return Figures(
            counts={
                "published": self.published,
                "delivered": self.delivered,
                "processed": self.processed,
                "effects": self.effects,
                "duplicates": self.duplicates,
                "lost": self.lost,
                "errors": self.errors,
                "events": self.last_seq,
            },
            kinds=dict(self.kinds),
            completed={"response": self.responses, "process": self.first_processed},
            planned=dict(self.planned),
            last_seq=self.last_seq,
            elapsed_ms=self.last_t_ms,
            perceived=self.perceived,
            end_to_end=self.end_to_end,
            perceived_n=len(self.perceived),
            end_to_end_n=len(self.end_to_end),
            fidelity=dict(self.fidelity),
        )
