"""Bounded memory along the event pipeline, and the encodings it relies on.

- the recorder's buffer: an emitter that outruns the pipeline waits for room (never on an
  event loop, never forever);
- the hand-off to the server loop: ordered, with a bounded number of messages in flight;
- the WebSocket: a client that never acks gets at most a window of events, then the rest
  once it acks (from memory or the database), gapless and none twice — per channel layer;
- a batch the layer lost at the end of a run is caught up when the summary reveals it;
- the stored and the streamed JSON say the same as ``json.dumps`` of the event dicts.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import threading
import time
import uuid

import pytest
from channels.testing import WebsocketCommunicator

from dashboard import settings as dashboard_settings
from flows import eventstore, pipeline
from flows import recorder as recorder_module
from flows import runner as runner_module
from flows.lazy import Lazy
from flows.models import Run
from flows.pipeline import EventPipeline, LoopSender, TrackedRun
from flows.recorder import Recorder, as_dict

ORIGIN = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]


class IdlePipeline:
    """A pipeline that never drains: only counts wake-ups."""

    def __init__(self) -> None:
        self.wakes = 0

    def wake(self, recorder: Recorder) -> None:
        self.wakes += 1


# -- the recorder's buffer -------------------------------------------------------------


def test_emitter_waits_for_room_when_the_pipeline_falls_behind():
    recorder = Recorder(1, IdlePipeline(), max_pending=100)
    for i in range(99):
        recorder.emit("publish", "producer", f"m{i}")
    finished = threading.Event()

    def emit_more() -> None:
        for i in range(10):
            recorder.emit("publish", "producer", f"late{i}")
        finished.set()

    thread = threading.Thread(target=emit_more)
    thread.start()
    assert not finished.wait(0.3), "an emitter past max_pending must wait for the pipeline"
    assert recorder.pending == 100
    recorder.take(60)
    assert finished.wait(5), "taking a batch must let the waiting emitter go on"
    thread.join()
    assert recorder.pending == 49
    assert recorder.seq == 109


def test_emit_on_an_event_loop_never_waits(monkeypatch):
    # A wait would last a minute: no loaded machine makes 50 emits take that long.
    monkeypatch.setattr(recorder_module, "MAX_WAIT_S", 60.0)
    recorder = Recorder(1, IdlePipeline(), max_pending=10)

    async def emit_many() -> None:
        for i in range(50):
            recorder.emit("process", "consumer", f"m{i}")

    started = time.monotonic()
    asyncio.run(emit_many())
    assert time.monotonic() - started < recorder_module.MAX_WAIT_S
    assert recorder.pending == 50


def test_emitter_stops_waiting_when_the_pipeline_is_stuck(monkeypatch):
    monkeypatch.setattr(recorder_module, "MAX_WAIT_S", 0.2)
    recorder = Recorder(1, IdlePipeline(), max_pending=5)
    started = time.monotonic()
    for i in range(50):
        recorder.emit("publish", "producer", f"m{i}")
    # One bounded wait, then no more until the pipeline writes again: a database outage
    # must not freeze the run. One wait is 0.2 s; one per emit past the bound would be 9 s.
    assert time.monotonic() - started < 4.5
    assert recorder.pending == 50
    recorder.mark_written(0)
    started = time.monotonic()
    recorder.emit("publish", "producer", "after-recovery")
    assert time.monotonic() - started >= 0.15, "a pipeline that writes again restores the backpressure"


def test_take_returns_the_oldest_events_first():
    recorder = Recorder(1, IdlePipeline())
    for i in range(10):
        recorder.emit("publish", "producer", f"m{i}")
    assert [e[0] for e in recorder.take(4)] == [1, 2, 3, 4]
    assert [e[0] for e in recorder.take()] == list(range(5, 11))


def test_a_hot_run_lingers_long_enough_for_batches_that_outweigh_their_fixed_cost():
    # A trickle (a click) still shows within the short linger...
    assert pipeline.linger_s(0) == pipeline.linger_s(1000) == pipeline.LINGER_S
    # ... while a sync workflow at full speed (grpc-person: about 5,000 events/s) gets the
    # whole cap, so its batches hold ~125 events rather than ~30 (bench/bench_grpc.py).
    assert pipeline.linger_s(5000) == pipeline.MAX_LINGER_S
    assert pipeline.linger_s(5000) * 5000 >= 100
    assert pipeline.LINGER_S < pipeline.linger_s(2500) < pipeline.MAX_LINGER_S


# -- the hand-off to the server loop ------------------------------------------------------


class YieldingLayer:
    """Awaits inside group_send, like a network layer, and records what it got and the backlog."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.sender: LoopSender | None = None
        self.max_backlog = 0

    async def group_send(self, group: str, message: dict) -> None:
        await asyncio.sleep(0.001)
        if self.sender is not None:
            self.max_backlog = max(self.max_backlog, len(self.sender._queue))
        self.received.append(message["n"])


def test_sends_from_a_thread_arrive_in_order_with_a_bounded_backlog():
    layer = YieldingLayer()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        events_pipeline = EventPipeline(layer_factory=lambda: layer)
        events_pipeline.attach_loop(loop)
        for n in range(200):
            events_pipeline._send(7, {"type": "run.events", "n": n})
            layer.sender = events_pipeline._sender
        assert events_pipeline._sender.wait_idle(10)
        assert layer.received == list(range(200))
        assert layer.max_backlog <= pipeline.MAX_IN_FLIGHT
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_stopped_loop_gets_nothing_and_the_pipeline_falls_back():
    layer = YieldingLayer()
    loop = asyncio.new_event_loop()  # never running
    events_pipeline = EventPipeline(layer_factory=lambda: layer)
    events_pipeline.attach_loop(loop)
    events_pipeline._send(7, {"type": "run.events", "n": 1})
    assert layer.received == [1], "without a running server loop the private loop sends"
    loop.close()


def test_recent_batches_are_bounded_and_found_by_seq(monkeypatch):
    monkeypatch.setattr(pipeline, "RECENT_EVENTS", 30)
    tracked = TrackedRun(Recorder(1, IdlePipeline()), None)
    for first in range(1, 101, 10):
        tracked.remember(first, first + 9, f"batch-{first}")
    kept = [b[0] for b in tracked.recent]
    assert kept == [71, 81, 91], "only about RECENT_EVENTS events stay in memory"
    assert tracked.recent_batch(80)[2] == "batch-81"
    assert tracked.recent_batch(84)[:2] == (81, 90), "a seq inside a batch finds that batch"
    assert tracked.recent_batch(60) is None, "evicted"
    assert tracked.recent_batch(100) is None, "not yet stored"


# -- the WebSocket window ---------------------------------------------------------------


@pytest.fixture
def fresh_pipeline(monkeypatch):
    """A pipeline of its own for this test (and a runner that uses it), not left behind for others."""
    events_pipeline = EventPipeline()
    monkeypatch.setattr(pipeline, "_pipeline", Lazy(lambda: events_pipeline))
    monkeypatch.setattr(runner_module, "_runner", Lazy(runner_module.Runner))
    yield events_pipeline
    assert events_pipeline.stop(), "the pipeline thread ends with the test"


@pytest.fixture
def tracked_recorder(fresh_pipeline):
    """A running run's recorder, tracked by the test's pipeline until the test ends."""
    run = Run.objects.create(workflow="http-crud", state=Run.State.RUNNING)
    recorder = Recorder(run.pk, fresh_pipeline)
    fresh_pipeline.track(recorder)
    yield recorder
    fresh_pipeline.untrack(run.pk)


async def follow_from_start(run_id: int) -> WebsocketCommunicator:
    """A WebSocket client on the run from its first event, past the summary it gets on connecting."""
    communicator = WebsocketCommunicator(asgi_application(), f"/ws/runs/{run_id}/?after=0", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    assert json.loads(await communicator.receive_from(timeout=10))["type"] == "summary"
    return communicator


def emit_in_bursts(recorder: Recorder, events_pipeline: EventPipeline, total: int, burst: int) -> None:
    """Emit from a plain thread in bursts, each stored before the next: batches stay small."""
    for start in range(0, total, burst):
        for i in range(start, min(total, start + burst)):
            recorder.emit("deliver", "queue:billing", f"m{i}", attrs={"queue": "billing", "n": i})
        assert events_pipeline.flush(recorder, 20)


async def read_until_marker(communicator: WebsocketCommunicator, marker: str) -> list[int]:
    """Event seqs received until the summary carrying ``marker`` (everything sent before it)."""
    seqs: list[int] = []
    while True:
        message = json.loads(await communicator.receive_from(timeout=20))
        if message["type"] == "events":
            seqs.extend(e["seq"] for e in message["events"])
        elif message["type"] == "summary" and message["summary"].get("marker") == marker:
            return seqs


@pytest.mark.django_db(transaction=True)
@pytest.mark.stack
class WindowContract:
    """Per channel layer: the consumer's window holds whatever the layer is."""

    WINDOW = 60
    BURST = 20
    TOTAL = 1000

    def test_client_that_never_acks_gets_at_most_a_window_then_the_rest(self, settings, layer, fresh_pipeline,
                                                                          tracked_recorder):
        settings.FLOWS_WS_WINDOW = self.WINDOW
        recorder = tracked_recorder
        run_id = recorder.run_id

        async def scenario() -> list[int]:
            communicator = await follow_from_start(run_id)
            await asyncio.to_thread(emit_in_bursts, recorder, fresh_pipeline, self.TOTAL, self.BURST)
            # The marker goes through the layer after every batch: once it arrives, the
            # consumer has handled them all.
            await asyncio.to_thread(fresh_pipeline.publish_summary, run_id, {"marker": "stored"})
            seqs = await read_until_marker(communicator, "stored")
            assert seqs == list(range(1, len(seqs) + 1))
            assert self.WINDOW <= len(seqs) <= self.WINDOW + self.BURST, (
                f"a client that never acks got {len(seqs)} events; the window is {self.WINDOW}")
            while seqs[-1] < self.TOTAL:
                unacked_from = len(seqs)
                await communicator.send_to(text_data=json.dumps({"type": "ack", "seq": seqs[-1]}))
                marker = f"ack-{seqs[-1]}"
                await asyncio.to_thread(fresh_pipeline.publish_summary, run_id, {"marker": marker})
                seqs += await read_until_marker(communicator, marker)
                assert len(seqs) - unacked_from <= self.WINDOW + self.BURST
            await communicator.disconnect()
            return seqs

        seqs = asyncio.run(scenario())
        assert seqs == list(range(1, self.TOTAL + 1)), "after acking, every event once, in order"

    def test_a_lost_last_batch_is_caught_up_when_the_summary_shows_it(self, layer, fresh_pipeline, tracked_recorder,
                                                                      monkeypatch):
        recorder = tracked_recorder
        run_id = recorder.run_id
        real_send = fresh_pipeline._send
        dropped: list[int] = []

        def lossy_send(run_id: int, message: dict) -> None:
            if message["type"] == "run.events" and message["last"] == 30:
                dropped.append(message["last"])  # as if the layer were over capacity
                return
            real_send(run_id, message)

        monkeypatch.setattr(fresh_pipeline, "_send", lossy_send)

        async def scenario() -> list[int]:
            communicator = await follow_from_start(run_id)
            await asyncio.to_thread(emit_in_bursts, recorder, fresh_pipeline, 30, 10)
            await asyncio.to_thread(fresh_pipeline.publish_summary, run_id, {"marker": "end", "last_seq": 30})
            seqs = await read_until_marker(communicator, "end")
            await communicator.disconnect()
            return seqs

        seqs = asyncio.run(scenario())
        assert dropped == [30]
        assert seqs == list(range(1, 31)), "the events of the lost batch come before the summary"


def asgi_application():
    from dashboard.asgi import application

    return application


@pytest.fixture(autouse=True)
def asgi_imported_outside_the_loop() -> None:
    """Importing dashboard.asgi reaps orphaned runs through the ORM: done here, on a sync
    thread, not first inside a scenario's event loop (where Django refuses the query)."""
    asgi_application()


class TestWindowInMemoryLayer(WindowContract):
    @pytest.fixture
    def layer(self, settings):
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def redis_layer_config(redis_url: str) -> dict:
    """The product's redis layer, with a prefix of its own: the shared Redis keeps other runs' groups."""
    config = dashboard_settings.redis_channel_layer(redis_url)
    return {**config, "CONFIG": {**config["CONFIG"], "prefix": f"test-{uuid.uuid4().hex[:8]}"}}


class TestWindowRedisLayer(WindowContract):
    @pytest.fixture
    def layer(self, settings, redis_url):
        settings.CHANNEL_LAYERS = {"default": redis_layer_config(redis_url)}


@pytest.mark.stack
def test_an_idle_redis_layer_receive_keeps_waiting(redis_url):
    """A consumer with nothing to receive for longer than the blocking pop must not be torn down."""
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(**redis_layer_config(redis_url)["CONFIG"])

    async def idle() -> None:
        channel = await layer.new_channel()
        with pytest.raises(asyncio.TimeoutError):  # our own deadline, not a Redis error
            await asyncio.wait_for(layer.receive(channel), RedisChannelLayer.brpop_timeout + 1.5)
        await layer.flush()

    asyncio.run(idle())


# -- encodings --------------------------------------------------------------------------


ODD_ATTRS = [
    {"queue": "billing", "n": 1, "ok": True, "none": None, "ratio": 0.1},
    {"text": "ünïcödé \"quoted\" \\ back\nline", "nested": {"list": [1, 2.5, "x"]}},
    {"big": 2**70, "price": decimal.Decimal("1.10")},
    {1: "int key"},
]


def odd_events() -> list[tuple]:
    return [
        (i + 1, round(i * 0.123, 3), "deliver", "queue:bïlling", f"m-{i}", 1 + i % 2, i % 2 == 1, ODD_ATTRS[i % len(ODD_ATTRS)])
        for i in range(1203)
    ]


def test_streamed_json_says_what_json_dumps_says():
    events = odd_events()
    batch = eventstore.encode_batch(events)
    expected = json.loads(json.dumps([as_dict(e) for e in events], default=str))
    assert json.loads(eventstore.events_json(events, batch.attrs_json)) == expected
    dicts = [as_dict(e) for e in events]
    assert json.loads(eventstore.batch_json(dicts, events, batch.attrs_json)) == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.stack
def test_stored_events_read_back_the_same_both_ways():
    run = Run.objects.create(workflow="http-crud")
    events = odd_events()
    eventstore.write_batch(run.pk, eventstore.encode_batch(events))
    expected = json.loads(json.dumps([as_dict(e) for e in events], default=str))
    assert json.loads(json.dumps(eventstore.read_events(run.pk, 0, 5000))) == expected
    text, count, last = eventstore.read_events_json(run.pk, 100, 500)
    assert (count, last) == (500, 600)
    assert json.loads(text) == expected[100:600]
    assert eventstore.read_events_json(run.pk, 1203, 10) == ("[]", 0, 1203)


# -- the linger ---------------------------------------------------------------------------


def test_a_sampling_run_lingers_longest_and_a_trickle_briefly():
    from flows.fidelity import Fidelity

    events_pipeline = EventPipeline()
    trickle = Recorder(1, events_pipeline)
    sampling = Recorder(2, events_pipeline, fidelity=Fidelity("sampled"))
    for recorder in (trickle, sampling):
        events_pipeline._runs[recorder.run_id] = TrackedRun(recorder, None)
    events_pipeline._dirty = {trickle.run_id}
    assert events_pipeline._linger() == pipeline.LINGER_S  # a click still shows within milliseconds
    # Its sample trickles in, but the run is hot: its events gather instead of a batch each.
    events_pipeline._dirty = {trickle.run_id, sampling.run_id}
    assert events_pipeline._linger() == pipeline.MAX_LINGER_S
