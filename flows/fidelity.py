"""Fidelity: which events a run records one by one, and exact counts per edge of the rest.

At broker speed no person follows messages one by one, and recording four or five Python
events per message is most of what the run costs. In ``sampled`` mode the recorder asks
``Fidelity.counts`` about every *ordinary* event (publish, route, deliver, process…): the
events of a sample of messages are recorded whole, every anomaly is recorded (a duplicate,
a redelivery, anything marked ``planned: false`` or ``effect: false``…), and the rest only
bump a counter per ``(from, to, kind)`` edge. A ticker thread turns the counters into a
``flow`` event a few times a second (contracts: "Fidelity").

The hot path takes no lock: each emitting thread increments its own table, and the ticker
sums the tables (a dict copy is one C-level step under the GIL). ``from`` follows the
browser's stage rules (topology.js ``guessSource``) over a bounded table of each message's
stages, so it is best effort; the counts per kind are exact whatever it says.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from django.conf import settings

MODES = ("full", "sampled", "auto")
# Events that happen to every message on its way; the only ones ever counted instead of recorded.
ORDINARY = frozenset("publish route enqueue deliver process ack commit response request".split())
# An ordinary event carrying one of these (truthy) is an anomaly, or changes the summary's rule: recorded.
MARKS = ("redelivered", "dup", "unexpected", "reason")
_MARK_KEYS = frozenset((*MARKS, "effect", "planned"))
# Kinds that happen where the message already is (from == to): no stages to look up.
_IN_PLACE = frozenset(("process", "ack", "commit"))
# How long a rate is measured over before auto switches on it.
RATE_WINDOW_S = 0.5
# Messages whose stages are remembered (two generations of this many) to name an edge's ``from``.
TRAIL_MESSAGES = 50_000
Edge = tuple[str, str, str]  # (from, to, kind)
# A message's stages: (source, route, queue, consumer, last actor)
Trail = tuple[str, str, str, str, str]
_NO_TRAIL: Trail = ("", "", "", "", "")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


class Fidelity:
    """One run's fidelity: its mode now, the sample, and the exact counts of what was not recorded."""

    def __init__(self, asked: str = "auto", planned: int = 0, pace: tuple[int, float] = (0, 0.0)) -> None:
        """``planned``: the completions the run plans; ``pace``: the events it plans to record
        and how many a second (``math.inf`` unpaced), ``(0, 0.0)`` when the workflow cannot say."""
        if asked not in MODES:
            raise ValueError(f"fidelity must be one of {', '.join(MODES)}, not {asked!r}")
        self.asked = asked
        self.every = max(1, int(_setting("FLOWS_SAMPLE_EVERY", 100)))
        self.per_s = _setting("FLOWS_SAMPLE_PER_S", 20)
        self.max_rate = _setting("FLOWS_FIDELITY_MAX_RATE", 1000)
        self.min_events = int(_setting("FLOWS_FIDELITY_MIN_EVENTS", 2000))
        self.tick_s = _setting("FLOWS_FLOW_EVERY_S", 0.25)
        self.why = ""
        max_planned = int(_setting("FLOWS_FIDELITY_MAX_PLANNED", 20_000))
        if asked == "sampled":
            self.why = "fidelity=sampled was asked for"
        elif asked == "auto" and planned > max_planned:
            self.why = f"auto: planned {planned} completions > FLOWS_FIDELITY_MAX_PLANNED {max_planned}"
        elif asked == "auto":
            self.why = self._too_fast(*pace)
        self.sampling = bool(self.why)
        self._local = threading.local()
        self._tables: list[dict[Edge, int]] = []
        self._tables_lock = threading.Lock()
        self._reported: dict[Edge, int] = {}
        self._trails: dict[str, Trail] = {}
        self._old_trails: dict[str, Trail] = {}
        self._kept: set[str] = set()
        self._passed: set[str] = set()
        self._second = 0
        self._kept_this_second = 0
        self._last_frame_ms = 0.0
        self._rate_mark: tuple[float, int] | None = None

    def _too_fast(self, events: int, per_s: float) -> str:
        """Why a run that plans ``events`` at ``per_s`` a second samples from the start, or ''.

        The rate rule (``over_rate``) would switch it anyway, but only after half a second
        recorded in full: a short unpaced run is over by then, every event recorded.
        """
        if events <= self.min_events or per_s <= self.max_rate:
            return ""
        pace = "unpaced" if per_s == float("inf") else f"at {per_s:.0f} events/s"
        return (f"auto: plans {events} events {pace} > FLOWS_FIDELITY_MAX_RATE {self.max_rate:g} events/s "
                f"(more than FLOWS_FIDELITY_MIN_EVENTS {self.min_events})")

    # -- the hot path (any emitting thread) ------------------------------------------------

    def counts(self, kind: str, actor: str, message_id: str, attempt: int, duplicate: bool,
               attrs: dict[str, Any] | None) -> bool:
        """True if this ordinary event is counted instead of recorded (sampling only).

        Called for every ordinary event of a sampling run, so the common case (a plain
        event of a message outside the sample) is a handful of C-level steps.
        """
        if duplicate or attempt != 1 or not message_id:
            return False
        # isdisjoint walks the attrs' keys in C: most events carry no mark at all.
        if attrs and not _MARK_KEYS.isdisjoint(attrs) and _marked(attrs):
            return False
        if not zlib.crc32(message_id.encode()) % self.every and self.traces(message_id):
            return False
        source = actor if kind in _IN_PLACE else self._step(kind, actor, message_id, attrs)
        try:
            table = self._local.table
        except AttributeError:
            table = self._new_table()
        key = (source, actor, kind)
        table[key] = table.get(key, 0) + 1
        return True

    def sift(self, events: list[tuple[str, str, str, int, bool, dict[str, Any] | None]]
             ) -> list[tuple[str, str, str, int, bool, dict[str, Any] | None]]:
        """The events of a batch (kind, actor, message_id, attempt, duplicate, attrs) to record; the rest are counted.

        For a recorder stamping a fetched batch in one step: call it, while ``sampling``, before stamping.
        """
        counts = self.counts
        return [e for e in events if e[0] not in ORDINARY or not counts(*e)]

    def tally(self, source: str, to: str, kind: str, n: int = 1) -> None:
        """Count ``n`` events of ``kind`` on the edge ``source → to`` (for hot paths that count per batch)."""
        try:
            table = self._local.table
        except AttributeError:
            table = self._new_table()
        key = (source, to, kind)
        table[key] = table.get(key, 0) + n

    def _new_table(self) -> dict[Edge, int]:
        """This thread's counters: written by it alone, read (copied) by the ticker."""
        table = self._local.table = {}
        with self._tables_lock:
            self._tables.append(table)
        return table

    def surely_untraced(self, id_bytes: bytes) -> bool:
        """True when a sampling run certainly leaves this message (its id as UTF-8 bytes) out of the sample.

        The sample's first test (the id's CRC-32), asked on bytes a hot path already holds, in one
        call: a million-message run asks it per message. False means only "ask ``traces``".
        """
        return self.sampling and zlib.crc32(id_bytes) % self.every != 0

    def traces(self, message_id: str) -> bool:
        """Whether ``message_id`` is in the sample (all its events recorded); decided once per message."""
        if zlib.crc32(message_id.encode()) % self.every:
            return False
        if message_id in self._kept:
            return True
        if message_id in self._passed:
            return False
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._kept_this_second = second, 0
        if self._kept_this_second >= self.per_s:
            self._passed.add(message_id)
            return False
        self._kept_this_second += 1
        self._kept.add(message_id)
        return True

    def _step(self, kind: str, actor: str, message_id: str, attrs: dict[str, Any] | None) -> str:
        """Where the message was before this event (the browser's stage rules); remembers this one."""
        trails = self._trails
        trail = trails.get(message_id) or self._old_trails.get(message_id) or _NO_TRAIL
        source, route, queue, consumer, last = trail
        if kind in ("publish", "request"):
            came, source = actor, source or actor
        elif kind == "route":
            came, route = source or last, actor
        elif kind == "enqueue":
            came = actor if actor == source else route or source or last
            if actor != source:
                queue = actor
        elif kind == "deliver":
            named = attrs.get("queue") if attrs else None
            came = f"queue:{named}" if named else queue or route or source or last
            consumer = actor
        else:  # response: back from whoever handled it
            came = consumer or last
        trails[message_id] = (source, route, queue, consumer, actor)
        if len(trails) > TRAIL_MESSAGES:
            self._old_trails, self._trails = trails, {}
        return came

    # -- the ticker's side ------------------------------------------------------------------

    def switch(self, why: str) -> bool:
        """Start sampling (auto); False if it already was."""
        if self.sampling:
            return False
        self.why, self.sampling = why, True
        return True

    def over_rate(self, seq: int, now: float) -> str:
        """Why an ``auto`` run at ``seq`` events by ``now`` (monotonic s) must sample now, or ''."""
        if self.asked != "auto" or self.sampling:
            return ""
        if self._rate_mark is None:
            self._rate_mark = (now, seq)
            return ""
        since, at_seq = self._rate_mark
        if now - since < RATE_WINDOW_S:
            return ""
        rate = (seq - at_seq) / (now - since)
        self._rate_mark = (now, seq)
        if seq >= self.min_events and rate > self.max_rate:
            return (f"auto: {rate:.0f} events/s over the last {now - since:.1f} s > FLOWS_FIDELITY_MAX_RATE "
                    f"{self.max_rate:g}")
        return ""

    def frame(self, now_ms: float, why: str = "") -> dict[str, Any] | None:
        """The ``flow`` event's attrs for what was counted since the last frame; None if nothing was (and no ``why``)."""
        with self._tables_lock:
            tables = [table.copy() for table in self._tables]
        totals: dict[Edge, int] = {}
        for table in tables:
            for key, n in table.items():
                totals[key] = totals.get(key, 0) + n
        edges = []
        reported = self._reported
        for key, total in sorted(totals.items()):
            count = total - reported.get(key, 0)
            if count:
                edges.append({"from": key[0], "to": key[1], "kind": key[2], "count": count, "total": total})
                reported[key] = total
        if not edges and not why:
            return None
        attrs: dict[str, Any] = {"mode": "sampled" if self.sampling else "full",
                                 "window_ms": round(max(0.0, now_ms - self._last_frame_ms), 3),
                                 "edges": edges, "counted": sum(reported.values())}
        if why:
            attrs["why"] = why
        self._last_frame_ms = now_ms
        return attrs


def _marked(attrs: dict[str, Any]) -> bool:
    return any(attrs.get(mark) for mark in MARKS) or attrs.get("effect", True) is False \
        or attrs.get("planned", True) is False


def stayed_full_why(asked: str | None, pattern: str) -> str:
    """Why a run that never sampled recorded every event (the summary's ``fidelity.why``)."""
    if pattern == "sync":
        return "sync workflows record every event"
    if asked is None:
        return "recorded before runs had a fidelity: every event"
    if asked == "full":
        return "fidelity=full was asked for"
    return "auto: the run stayed within what a person can follow"


class FlowTicker(threading.Thread):
    """Emits a run's ``flow`` events every ``tick_s`` and switches an ``auto`` run when it gets fast."""

    def __init__(self, fidelity: Fidelity, emit: Callable[..., int], seq: Callable[[], int],
                 elapsed_ms: Callable[[], float], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.fidelity = fidelity
        self._emit = emit
        self._seq = seq
        self._elapsed_ms = elapsed_ms
        self._halt = threading.Event()

    def run(self) -> None:
        fidelity = self.fidelity
        fidelity.over_rate(self._seq(), time.monotonic())  # the rate is measured from here
        while not self._halt.wait(fidelity.tick_s):
            why = fidelity.over_rate(self._seq(), time.monotonic())
            if why and fidelity.switch(why):
                self.tick(why)
            elif fidelity.sampling:
                self.tick()

    def tick(self, why: str = "") -> None:
        attrs = self.fidelity.frame(self._elapsed_ms(), why)
        if attrs is not None:
            self._emit("flow", "runner", attrs=attrs)

    def stop(self) -> None:
        self._halt.set()
        if self is not threading.current_thread() and self.is_alive():
            self.join(5.0)
