"""The recorder and pipeline: gapless seq from any thread or coroutine, batched storage."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flows import eventstore
from flows.models import Event, Run
from flows.pipeline import EventPipeline
from flows.recorder import Recorder

from .test_pipeline_backpressure import IdlePipeline


class CapturingLayer:
    """Stands in for the channel layer only to observe what the pipeline sends."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.messages.append((group, message))


@pytest.fixture
def pipeline_and_layer():
    layer = CapturingLayer()
    events_pipeline = EventPipeline(layer_factory=lambda: layer)
    yield events_pipeline, layer
    assert events_pipeline.stop(), "the pipeline thread ends with the test"


@pytest.mark.django_db(transaction=True)
def test_seq_is_gapless_under_threads_and_coroutines(pipeline_and_layer, monkeypatch):
    pipeline, layer = pipeline_and_layer
    writes: list[int] = []
    real_write = eventstore.write_batch

    def counting_write(run_id, batch):
        writes.append(len(batch))
        real_write(run_id, batch)

    monkeypatch.setattr(eventstore, "write_batch", counting_write)
    run = Run.objects.create(workflow="http-crud")
    recorder = Recorder(run.pk, pipeline)
    pipeline.track(recorder)
    per_emitter, threads_n, coroutines_n = 2000, 4, 4
    start = threading.Barrier(threads_n + 1)

    def thread_emitter(n: int) -> None:
        start.wait()
        for i in range(per_emitter):
            recorder.emit("deliver", f"consumer:t{n}", f"t{n}-{i}")

    async def coroutine_emitter(n: int) -> None:
        for i in range(per_emitter):
            recorder.emit("process", f"consumer:c{n}", f"c{n}-{i}")
            if i % 100 == 0:
                await asyncio.sleep(0)

    async def all_coroutines() -> None:
        await asyncio.gather(*(coroutine_emitter(n) for n in range(coroutines_n)))

    threads = [threading.Thread(target=thread_emitter, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    start.wait()
    asyncio.run(all_coroutines())
    for t in threads:
        t.join()

    total = per_emitter * (threads_n + coroutines_n)
    assert pipeline.flush(recorder, timeout=30)
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, total + 1))
    # Each emitter's own events keep their order, and t_ms never runs backwards along seq.
    rows = list(Event.objects.filter(run=run).order_by("seq").values_list("t_ms", "message_id"))
    assert all(a[0] <= b[0] for a, b in zip(rows, rows[1:]))
    for n in range(threads_n):
        mine = [m for _, m in rows if m.startswith(f"t{n}-")]
        assert mine == [f"t{n}-{i}" for i in range(per_emitter)]
    # Batched: far fewer database writes than events, and every event streamed exactly once.
    assert sum(writes) == total
    assert len(writes) < total / 20
    streamed = [m for _, m in layer.messages if m["type"] == "run.events"]
    covered = [s for m in streamed for s in range(m["first"], m["last"] + 1)]
    assert covered == list(range(1, total + 1))
    assert {g for g, _ in layer.messages} == {f"run-{run.pk}"}


@pytest.mark.django_db(transaction=True)
def test_failed_write_is_retried_not_lost(pipeline_and_layer, monkeypatch):
    pipeline, layer = pipeline_and_layer
    run = Run.objects.create(workflow="http-crud")
    recorder = Recorder(run.pk, pipeline)
    pipeline.track(recorder)
    real_write = eventstore.write_batch
    failures = {"left": 2}

    def flaky_write(run_id, batch):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("database went away")
        real_write(run_id, batch)

    monkeypatch.setattr(eventstore, "write_batch", flaky_write)
    for i in range(50):
        recorder.emit("publish", "producer", f"m{i}")
    assert pipeline.flush(recorder, timeout=20)
    assert failures["left"] == 0
    assert list(Event.objects.filter(run=run).values_list("seq", flat=True)) == list(range(1, 51))


def test_unknown_kind_is_refused():
    recorder = Recorder(1, EventPipeline(layer_factory=lambda: None))
    with pytest.raises(ValueError, match="unknown event kind"):
        recorder.emit("teleport", "producer")
    assert recorder.seq == 0


def test_stop_ends_the_pipeline_thread_and_the_next_track_starts_another():
    events_pipeline = EventPipeline(layer_factory=lambda: None)
    events_pipeline.track(Recorder(1, events_pipeline))
    first = events_pipeline._thread
    assert first is not None and first.is_alive()
    assert events_pipeline.stop(timeout=5)
    assert not first.is_alive()
    events_pipeline.track(Recorder(2, events_pipeline))
    assert events_pipeline._thread is not first and events_pipeline._thread.is_alive()
    assert events_pipeline.stop(timeout=5)


def test_emit_many_stamps_each_event_in_order_with_one_wake():
    waker = IdlePipeline()
    recorder = Recorder(1, waker)
    recorder.emit("publish", "producer", "m-1")
    last = recorder.emit_many([("deliver", "consumer:a", "m-1", 1, False, {"offset": 0}),
                               ("process", "consumer:a", "m-1", 1, False, None)])
    assert last == 3 and waker.wakes == 1  # the buffer was not empty: the first emit's wake covers it
    events = recorder.take()
    assert [(e[0], e[2], e[7]) for e in events] == [(1, "publish", {}), (2, "deliver", {"offset": 0}),
                                                    (3, "process", {})]
    assert events[1][1] <= events[2][1]  # t_ms never runs backwards along seq
    recorder.emit_many([("ack", "consumer:a", "m-1", 1, False, {})])
    assert waker.wakes == 2  # an empty buffer: the batch wakes the pipeline once


def test_emit_many_refuses_an_unknown_kind_before_stamping_any():
    recorder = Recorder(1, IdlePipeline())
    with pytest.raises(ValueError, match="unknown event kind"):
        recorder.emit_many([("deliver", "consumer:a", "m-1", 1, False, {}), ("teleport", "x", "", 1, False, {})])
    assert recorder.seq == 0 and recorder.pending == 0


def test_emit_many_after_the_last_event_is_dropped():
    recorder = Recorder(1, IdlePipeline())
    recorder.emit("done", "runner", last=True)
    assert recorder.emit_many([("deliver", "consumer:a", "m-1", 1, False, {})]) == 0
    assert recorder.seq == 1 and recorder.dropped == 1
