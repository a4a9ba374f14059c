"""Fidelity without a broker: what a sampled recorder records, counts and sums (contracts: "Fidelity")."""

from __future__ import annotations

import threading

import pytest

from flows import registry
from flows.fidelity import Fidelity, FlowTicker
from flows.recorder import FIELDS, Recorder
from flows.summary import SummaryBuilder


class Keep:
    """A pipeline stand-in that keeps nothing: the test takes the events itself."""

    def wake(self, recorder: Recorder) -> None:
        pass


def sampled_recorder(**settings_overrides) -> tuple[Recorder, Fidelity]:
    fidelity = Fidelity("sampled")
    for name, value in settings_overrides.items():
        setattr(fidelity, name, value)
    return Recorder(1, Keep(), max_pending=10**9, fidelity=fidelity), fidelity


def journey(recorder: Recorder, n: int, consumer: str = "consumer:c") -> None:
    mid = f"m-{n}"
    recorder.emit("publish", "producer", mid, attrs={"perceived_ms": 1.0})
    recorder.emit("route", "topic:t/p0", mid, attrs={"partition": 0})
    recorder.emit("deliver", consumer, mid, attrs={"partition": 0})
    recorder.emit("process", consumer, mid, attrs={"end_to_end_ms": 2.0})


def summary_of(recorder: Recorder) -> dict:
    events = [dict(zip(FIELDS, e)) for e in recorder.take()]
    return SummaryBuilder().feed_all(events).snapshot(), events


def test_every_async_workflow_takes_fidelity_and_no_sync_one_does():
    for cls in registry.all_workflows():
        assert ("fidelity" in cls.params) == (cls.pattern == "async"), cls.slug
        if cls.pattern == "async":
            assert cls.params["fidelity"].default == "auto"
            _, errors = cls.validate({"fidelity": "most"})
            assert "fidelity" in errors


def test_a_sampled_recorder_keeps_whole_traces_of_a_few_and_counts_the_rest_exactly():
    recorder, fidelity = sampled_recorder(every=10, per_s=10**6)
    for n in range(1, 1001):
        journey(recorder, n)
    recorder.emit("done", "runner", attrs={"state": "succeeded", "lost": 0}, last=True)
    summary, events = summary_of(recorder)
    traced = {e["message_id"] for e in events if e["kind"] == "publish"}
    assert 50 <= len(traced) <= 200  # about one in ten by CRC-32
    for mid in traced:  # whole traces: every kind of a traced message was recorded
        assert {e["kind"] for e in events if e["message_id"] == mid} == {"publish", "route", "deliver", "process"}
    assert summary["counts"]["published"] == summary["counts"]["delivered"] == summary["counts"]["processed"] == 1000
    assert summary["planned"]["process"] == summary["completed"]["process"] == 1000
    assert summary["kinds"]["route"] == 1000
    assert summary["latency_ms"]["sampled"] is True
    assert summary["latency_ms"]["end_to_end"]["count"] == len(traced)
    assert summary["fidelity"]["counted"] == 4 * (1000 - len(traced))
    assert len(events) < 4 * len(traced) + 3
    # The final frame comes just before done, with the stage rules' edges.
    flow = events[-2]
    assert flow["kind"] == "flow" and events[-1]["kind"] == "done"
    edges = {(e["from"], e["to"], e["kind"]) for e in flow["attrs"]["edges"]}
    assert edges == {("producer", "producer", "publish"), ("producer", "topic:t/p0", "route"),
                     ("topic:t/p0", "consumer:c", "deliver"), ("consumer:c", "consumer:c", "process")}


def test_anomalies_are_always_recorded_one_by_one():
    recorder, _ = sampled_recorder(every=10**9)  # nothing is in the sample
    recorder.emit("publish", "producer", "m-1")
    recorder.emit("deliver", "consumer:c", "m-1", 2, True, {"reason": "crash"})
    recorder.emit("deliver", "consumer:c", "m-2", attrs={"redelivered": True})
    recorder.emit("deliver", "subscriber:s", "m-3", attrs={"dup": True})
    recorder.emit("process", "consumer:c", "m-4", attrs={"effect": False})
    recorder.emit("process", "consumer:c", "m-5", attrs={"planned": False})
    recorder.emit("crash", "consumer:c", "m-6")
    recorder.emit("requeue", "queue:q", "m-6")
    _, events = summary_of(recorder)
    assert [e["message_id"] for e in events] == ["m-1", "m-2", "m-3", "m-4", "m-5", "m-6", "m-6"]


def test_counters_are_exact_across_threads():
    recorder, fidelity = sampled_recorder(every=10**9)
    threads = [threading.Thread(target=lambda k=k: [journey(recorder, k * 10_000 + n, f"consumer:c{k}")
                                                   for n in range(2000)]) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.emit("done", "runner", attrs={"state": "succeeded", "lost": 0}, last=True)
    summary, _ = summary_of(recorder)
    assert summary["counts"]["processed"] == summary["counts"]["published"] == 8000
    assert summary["fidelity"]["counted"] == 32_000


def test_flow_frames_carry_only_what_is_new_and_the_summary_never_counts_twice():
    recorder, fidelity = sampled_recorder(every=10**9)
    ticker = FlowTicker(fidelity, recorder.emit, lambda: recorder.seq, recorder.elapsed_ms, "flow-test")
    for n in range(10):
        journey(recorder, n)
    ticker.tick()
    ticker.tick()  # nothing new: no frame
    for n in range(10, 15):
        journey(recorder, n)
    ticker.tick()
    recorder.emit("done", "runner", attrs={"state": "succeeded", "lost": 0}, last=True)
    summary, events = summary_of(recorder)
    frames = [e["attrs"] for e in events if e["kind"] == "flow"]
    assert len(frames) == 2
    route = [next(e for e in f["edges"] if e["kind"] == "route") for f in frames]
    assert [(e["count"], e["total"]) for e in route] == [(10, 10), (5, 15)]
    assert summary["counts"]["published"] == 15


@pytest.mark.parametrize("asked, planned, sampling", [("full", 10**6, False), ("sampled", 1, True),
                                                     ("auto", 10, False), ("auto", 10**6, True)])
def test_the_mode_at_the_start(asked, planned, sampling, settings):
    settings.FLOWS_FIDELITY_MAX_PLANNED = 1000
    fidelity = Fidelity(asked, planned)
    assert fidelity.sampling is sampling
    assert bool(fidelity.why) is sampling


@pytest.mark.parametrize("asked, pace, sampling", [
    ("auto", (5000, float("inf")), True),  # unpaced, many events: over before the rate could be measured
    ("auto", (5000, 5000.0), True),
    ("auto", (5000, 900.0), False),  # paced within what the rate rule allows
    ("auto", (1500, float("inf")), False),  # unpaced but few: a person can read them afterwards
    ("auto", (0, 0.0), False),  # the workflow cannot say: the measured rate decides
    ("full", (10**6, float("inf")), False),
])
def test_auto_samples_from_the_start_a_run_that_plans_too_many_events_too_fast(asked, pace, sampling, settings):
    settings.FLOWS_FIDELITY_MAX_RATE = 1000
    settings.FLOWS_FIDELITY_MIN_EVENTS = 2000
    fidelity = Fidelity(asked, 10, pace)
    assert fidelity.sampling is sampling
    assert ("FLOWS_FIDELITY_MAX_RATE" in fidelity.why) is sampling


def test_auto_switches_on_a_sustained_rate_only_past_the_minimum(settings):
    settings.FLOWS_FIDELITY_MAX_RATE = 100
    settings.FLOWS_FIDELITY_MIN_EVENTS = 500
    fast = Fidelity("auto", 10)
    assert fast.over_rate(0, 0.0) == ""
    assert fast.over_rate(300, 0.3) == ""  # not half a second yet
    assert "events/s" in fast.over_rate(1000, 1.0)
    small = Fidelity("auto", 10)
    small.over_rate(0, 0.0)
    assert small.over_rate(400, 1.0) == ""  # fast, but fewer events than the minimum: a person can read them
    slow = Fidelity("auto", 10)
    slow.over_rate(0, 0.0)
    assert slow.over_rate(600, 10.0) == ""  # 60 events/s
    assert Fidelity("full", 10).over_rate(10**6, 1.0) == ""


def test_a_batch_is_sifted_by_the_same_rules():
    fidelity = Fidelity("sampled")
    fidelity.every = 10**9
    batch = [("deliver", "consumer:c", "m-1", 1, False, {"partition": 0}),
             ("process", "consumer:c", "m-1", 1, False, {}),
             ("deliver", "consumer:c", "m-2", 2, True, {"reason": "again"}),
             ("crash", "consumer:c", "", 1, False, {})]
    kept = fidelity.sift(batch)
    assert [e[2] for e in kept] == ["m-2", ""]
    assert fidelity.frame(1.0)["counted"] == 2


def test_a_hot_path_can_tally_what_it_does_not_trace():
    from flows.context import RunContext

    recorder, fidelity = sampled_recorder(every=10**9)
    ctx = RunContext(1, {}, recorder)
    assert not ctx.traced("m-1")
    ctx.tally("topic:t/p0", "consumer:c", "deliver", 500)
    recorder.emit("done", "runner", attrs={"state": "succeeded", "lost": 0}, last=True)
    summary, _ = summary_of(recorder)
    assert summary["counts"]["delivered"] == 500
    full = RunContext(2, {}, Recorder(2, Keep(), fidelity=Fidelity("full")))
    assert full.traced("m-1")
    with pytest.raises(RuntimeError):
        full.tally("a", "b", "deliver")
