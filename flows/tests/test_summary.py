"""Summary figures: percentiles, and counts derived from events by the documented rules."""

from __future__ import annotations

import random

import pytest

from flows.summary import SummaryBuilder, latency_stats, percentile


def reference_percentile(values: list[float], p: float) -> float:
    # Independent formulation of the linear-interpolation definition (numpy "linear").
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] * (above - position if above != below else 1) + ordered[above] * (position - below)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_percentiles_match_reference(n):
    rng = random.Random(n)
    values = [rng.uniform(0, 500) for _ in range(n)]
    ordered = sorted(values)
    for p in (50, 95, 99):
        assert percentile(ordered, p) == pytest.approx(reference_percentile(values, p))


def test_known_percentiles():
    stats = latency_stats(range(1, 101))
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["max"] == 100
    assert latency_stats([])["p50"] is None


def ev(seq, kind, message="", duplicate=False, attempt=1, **attrs):
    return {"seq": seq, "t_ms": float(seq), "kind": kind, "actor": "a", "message_id": message,
            "attempt": attempt, "duplicate": duplicate, "attrs": attrs}


def test_counts_follow_the_rules():
    events = [
        ev(1, "publish", "m1", perceived_ms=2.0),
        ev(2, "publish", "m2", perceived_ms=4.0),
        ev(3, "deliver", "m1"),
        ev(4, "process", "m1", end_to_end_ms=10.0),
        ev(5, "deliver", "m1", duplicate=True, attempt=2, reason="redelivered"),
        ev(6, "process", "m1", duplicate=True, attempt=2, effect=False, end_to_end_ms=30.0),
        ev(7, "deliver", "m2"),
        ev(8, "process", "m2", end_to_end_ms=20.0),
        ev(9, "retry", "m2"),
        ev(10, "done", lost=1),
    ]
    s = SummaryBuilder().feed_all(events).snapshot()
    assert s["counts"] == {"published": 2, "delivered": 3, "processed": 3, "effects": 2, "duplicates": 1,
                           "lost": 1, "errors": 0, "events": 10}
    assert s["completed"] == {"response": 0, "process": 2}
    assert s["latency_ms"]["perceived"]["p50"] == pytest.approx(3.0)
    assert s["latency_ms"]["end_to_end"]["max"] == 30.0
    assert s["latency_ms"]["end_to_end"]["count"] == 3


def test_snapshots_read_while_the_pipeline_feeds_are_never_torn():
    """The pipeline thread feeds batches while request and WebSocket threads read."""
    import sys
    import threading

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    builder = SummaryBuilder()
    kinds = ["publish", "deliver", "process", "ack", "deliver"]
    total, batch = 60_000, 50
    stop = threading.Event()
    torn: list[dict] = []
    reads = [0]

    def feeder() -> None:
        seq = 0
        while seq < total:
            events = []
            for _ in range(batch):
                seq += 1
                kind = kinds[seq % len(kinds)]
                events.append(ev(seq, kind, f"m{seq}", duplicate=kind == "deliver" and seq % 2 == 0,
                                 perceived_ms=float(seq % 97)))
            builder.feed_batch(events)
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            s = builder.snapshot()
            reads[0] += 1
            n = s["last_seq"]
            consistent = (
                s["counts"]["events"] == n
                and sum(s["kinds"].values()) == n
                and s["latency_ms"]["perceived"]["count"] == n
                and s["counts"]["published"] == s["kinds"].get("publish", 0)
                and s["counts"]["delivered"] == s["kinds"].get("deliver", 0)
                and s["counts"]["processed"] == s["kinds"].get("process", 0)
                and s["elapsed_ms"] == float(n)
            )
            if not consistent:
                torn.append(s)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=feeder)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        sys.setswitchinterval(previous)
        stop.set()
    assert reads[0] > 100, "the readers ran while the feeder fed"
    assert not torn, f"{len(torn)} of {reads[0]} snapshots were torn, e.g. {torn[0]}"
    assert builder.snapshot()["counts"]["events"] == total
