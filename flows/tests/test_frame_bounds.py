"""Every WebSocket frame stays well under daphne's 1 MiB limit, however big the run.

The summary carries a bounded copy of the workflow's result (the whole one is served at
``/api/runs/<id>/result/``) and a batch of events with big attrs is split across frames.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import orjson
import pytest

from flows.bounded_result import MAX_BYTES, bound_result
from flows.models import Run
from flows.pipeline import MAX_FRAME_BYTES, EventPipeline
from flows.recorder import Recorder
from flows.runner import get_runner
from flows.workflows.kafka_partitions import KafkaPartitions, KeyLane, KeyReads

FRAME_LIMIT = 512 * 1024


def frame_bytes(message: dict) -> int:
    return len(json.dumps(message, separators=(",", ":")).encode())


def largest_kafka_partitions_result() -> dict:
    """The real result builder, fed what a run at the largest allowed parameters reads at fidelity
    ``full`` (only such a run lists each read of each key)."""
    params = {name: p.max if p.max is not None else p.default for name, p in KafkaPartitions.params.items()}
    messages, partitions, keys = params["messages"], params["partitions"], params["keys"]
    key_list = [f"key-{k}" for k in range(1, keys + 1)]
    by_key = {k: KeyReads(k) for k in key_list}
    lanes = {k: KeyLane() for k in key_list}
    ends = dict.fromkeys(range(partitions), 0)
    for n in range(1, messages + 1):
        key = key_list[(n - 1) % keys]
        part, seq = hash(key) % partitions, (n - 1) // keys + 1
        by_key[key].read(seq, part, ends[part])
        lanes[key].extend((seq, part, ends[part]))
        ends[part] += 1
    producer = SimpleNamespace(all_keys=lambda: key_list, confirmed=messages, failed=0, sent=messages,
                               end_offsets=ends)
    reader = SimpleNamespace(by_key=by_key, lanes=lanes, end_offsets=ends, per_partition=ends, count=messages)
    return KafkaPartitions._result({**params, "acks": "all", "idempotent": False}, "flows.run-1.orders",
                                   producer, reader, 10.0)


@pytest.mark.django_db
def test_the_largest_kafka_partitions_result_fits_a_frame_and_is_served_whole(client):
    result = largest_kafka_partitions_result()
    assert len(orjson.dumps(result)) > 1024 * 1024, "unbounded, it would not fit a frame"
    run = Run.objects.create(workflow="kafka-partitions", state="succeeded", result=result)
    run.summary = get_runner().summary_of(run)
    run.save()

    summary = client.get(f"/api/runs/{run.pk}/").json()
    assert frame_bytes({"type": "summary", "summary": summary}) < FRAME_LIMIT
    bounded = summary["result"]
    # The panels' fields are intact; the cut collections say how long they really are.
    assert bounded["end_offsets"] == result["end_offsets"] and bounded["lost"] == 0
    note = bounded["truncated"]
    assert note["full"] == f"/api/runs/{run.pk}/result/"
    first_key = next(iter(result["keys"]))
    assert note["totals"][f"keys.{first_key}.offsets"] == len(result["keys"][first_key]["offsets"])
    assert len(bounded["keys"][first_key]["offsets"]) == note["items_kept"]
    assert bounded["keys"][first_key]["offsets"] == result["keys"][first_key]["offsets"][: note["items_kept"]]

    whole = client.get(note["full"]).json()
    assert whole["result"] == result and whole["state"] == "succeeded"


@pytest.mark.django_db
def test_a_summary_frozen_before_results_were_bounded_is_bounded_when_served(client):
    result = {"keys": {f"k{i}": list(range(5000)) for i in range(64)}}
    run = Run.objects.create(workflow="kafka-partitions", state="succeeded", result=result,
                             summary={"id": 0, "state": "succeeded", "result": result})
    summary = client.get(f"/api/runs/{run.pk}/").json()
    assert frame_bytes(summary) < MAX_BYTES + 4096 and summary["result"]["truncated"]


@pytest.mark.django_db
def test_the_result_endpoint_answers_404_for_an_unknown_run(client):
    response = client.get("/api/runs/999999/result/")
    assert response.status_code == 404 and "run" in response.json()["errors"]


def random_tree(rng: random.Random, depth: int, budget: list[int]) -> object:
    """Wide lists and maps, long strings and nesting, within ``budget`` leaf bytes."""
    roll = rng.random()
    if depth == 0 or roll < 0.3 or budget[0] <= 0:
        leaf = rng.choice([rng.randint(0, 10**9), "x" * rng.randint(0, 50_000), None, rng.random()])
        budget[0] -= len(leaf) if isinstance(leaf, str) else 8
        return leaf
    width = rng.choice([1, 5, 40, 3000])
    if roll < 0.65:
        return [random_tree(rng, depth - 1, budget) for _ in range(width)]
    return {f"k{i}": random_tree(rng, depth - 1, budget) for i in range(width)}


@pytest.mark.parametrize("seed", range(12))
def test_any_result_is_bounded_whatever_its_shape(seed):
    rng = random.Random(seed)
    budget = [8 * 1024 * 1024]
    result = {f"field{i}": random_tree(rng, 3, budget) for i in range(rng.randint(1, 20))}
    bounded = bound_result(result, "/api/runs/1/result/")
    assert len(orjson.dumps(bounded)) <= MAX_BYTES
    if len(orjson.dumps(result)) <= MAX_BYTES:
        assert bounded == result, "a result that fits is passed through untouched"
    else:
        assert bounded["truncated"]["full"] == "/api/runs/1/result/"


def test_small_results_pass_through_untouched():
    result = {"lost": 0, "end_offsets": {"0": 3}, "proto": "syntax = 'proto3';"}
    assert bound_result(result) is result
    assert bound_result({}) == {}


class CapturingLayer:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.messages.append(message)


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_events_with_big_attrs_is_split_into_bounded_frames(request):
    layer = CapturingLayer()
    pipeline = EventPipeline(layer_factory=lambda: layer)
    request.addfinalizer(pipeline.stop)  # its thread ends with the test
    run = Run.objects.create(workflow="http-crud")
    recorder = Recorder(run.pk, pipeline)
    pipeline.track(recorder)
    # Non-ASCII too: the bound is in bytes, not characters.
    for i in range(1, 2001):
        recorder.emit("response", "client", f"m{i}", attrs={"body": "é" * 600})
    assert pipeline.flush(recorder, timeout=30)
    frames = [m for m in layer.messages if m["type"] == "run.events"]
    assert max(len(m["text"].encode()) for m in frames) <= MAX_FRAME_BYTES
    seqs = [e["seq"] for m in frames for e in json.loads(m["text"])["events"]]
    assert seqs == list(range(1, 2001)), "split frames still cover every event once, in order"
    assert all(m["first"] == json.loads(m["text"])["events"][0]["seq"] for m in frames)
    # The in-memory catch-up serves the same bounded frames.
    assert pipeline.recent_batch(run.pk, 0)[2] == frames[0]["text"]
    pipeline.untrack(run.pk)


@pytest.mark.django_db(transaction=True)
def test_a_client_caught_up_from_the_database_gets_bounded_frames():
    import asyncio

    from channels.testing import WebsocketCommunicator

    from dashboard.asgi import application
    from flows import eventstore

    run = Run.objects.create(workflow="http-crud", state="succeeded")
    big = {"body": "x" * 700}
    batch = eventstore.encode_batch([(i, float(i), "response", "client", f"m{i}", 1, False, big)
                                     for i in range(1, 2501)])
    eventstore.write_batch(run.pk, batch)
    run.summary = get_runner().summary_of(run)
    run.save()

    text, count, last = eventstore.read_events_json(run.pk, 0, 2000, MAX_FRAME_BYTES)
    assert len(text.encode()) <= MAX_FRAME_BYTES and 0 < count < 2000 and last == count

    async def follow() -> tuple[list[int], int]:
        origin = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?after=0", headers=origin)
        connected, _ = await communicator.connect()
        assert connected
        seqs, largest = [], 0
        while True:
            raw = await communicator.receive_from(timeout=20)
            largest = max(largest, len(raw.encode()))
            message = json.loads(raw)
            if message["type"] == "summary":
                break
            seqs.extend(e["seq"] for e in message["events"])
        await communicator.disconnect()
        return seqs, largest

    seqs, largest = asyncio.run(follow())
    assert seqs == list(range(1, 2501))
    assert largest <= MAX_FRAME_BYTES
