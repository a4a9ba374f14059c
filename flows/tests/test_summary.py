"""Summary figures: percentiles, and counts derived from events by the documented rules."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from flows.summary import SummaryBuilder, latency_stats, percentile

# Event sequences with the figures they must give, by hand. static/js/tests/run-model.test.mjs
# feeds the same files to the browser's run-model.js, so the two can never disagree.
FIXTURES = Path(__file__).parent / "fixtures" / "summary"
EVENT_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "latency_stats.json")


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


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


def assert_stats(actual: dict, expected: dict) -> None:
    for stat, value in expected.items():
        assert actual[stat] == (value if value is None else pytest.approx(value)), stat


@pytest.mark.parametrize("case", load_fixture("latency_stats.json")["cases"], ids=lambda case: f"{len(case['values'])} values")
def test_known_percentiles(case):
    assert_stats(latency_stats(case["values"]), case["expected"])


def ev(seq, kind, message="", duplicate=False, attempt=1, **attrs):
    return {"seq": seq, "t_ms": float(seq), "kind": kind, "actor": "a", "message_id": message,
            "attempt": attempt, "duplicate": duplicate, "attrs": attrs}


def test_the_fixtures_are_found():
    # The original hand-written sequence, and the others beside it: an empty glob must not pass.
    assert "async_redelivery.json" in EVENT_FIXTURES
    assert len(EVENT_FIXTURES) >= 3


@pytest.mark.parametrize("name", EVENT_FIXTURES)
def test_counts_follow_the_rules(name):
    fixture = load_fixture(name)
    expected = fixture["expected"]
    s = SummaryBuilder().feed_all(fixture["events"]).snapshot()
    assert s["counts"] == expected["counts"]
    assert s["completed"] == expected["completed"]
    assert s["planned"] == expected["planned"]
    assert s["kinds"] == expected["kinds"]
    for series in ("perceived", "end_to_end"):
        assert_stats(s["latency_ms"][series], expected["latency_ms"][series])
    if "sampled" in expected["latency_ms"]:
        assert s["latency_ms"]["sampled"] == expected["latency_ms"]["sampled"]
    if "fidelity" in expected:
        assert s["fidelity"] == expected["fidelity"]
    assert s["last_seq"] == expected["last_seq"]
    assert s["elapsed_ms"] == expected["elapsed_ms"]


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
