"""The run WebSocket: resume after any seq, gapless, none twice; foreign origins refused."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.testing import WebsocketCommunicator

from dashboard.asgi import application
from flows.models import Event, Run
from flows.runner import get_runner, wait_until_finished

from . import polling

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

SLOW = {"persons": 4, "repeat": 3, "delay_ms": 0, "error_rate": 0.0, "rate": 40}
ORIGIN = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]


@pytest.fixture(autouse=True)
def allowed_origin(settings):  # pytest-django's settings fixture
    settings.FLOWS_ALLOWED_ORIGINS = ["http://127.0.0.1:8000"]  # whatever PORT this shell has


def wait_for_events(run_id: int, at_least: int, timeout: float = 20) -> int:
    events = polling.wait_for_events(run_id, lambda stored: len(stored) >= at_least, timeout,
                                     f"run {run_id} to record {at_least} events")
    return len(events)


async def follow(run_id: int, after: int, until_final: bool = True, max_events: int | None = None,
                 timeout: float = 30) -> tuple[list[int], dict | None]:
    """Collect seqs from the socket until the final summary (or ``max_events``)."""
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after={after}", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    seqs: list[int] = []
    final = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = json.loads(await communicator.receive_from(timeout=deadline - time.monotonic()))
            if message["type"] == "events":
                seqs.extend(e["seq"] for e in message["events"])
                await communicator.send_to(text_data=json.dumps({"type": "ack", "seq": seqs[-1]}))
                if max_events is not None and len(seqs) >= max_events:
                    break
            elif message["type"] == "summary" and message["summary"]["state"] not in ("pending", "running"):
                final = message["summary"]
                if until_final:
                    break
    finally:
        await communicator.disconnect()
    return seqs, final


def test_connect_mid_run_with_after_receives_exactly_the_rest():
    run = get_runner().start("http-crud", SLOW)
    k = wait_for_events(run.pk, 10) - 3  # somewhere in the middle, not on a batch edge
    seqs, final = asyncio.run(follow(run.pk, after=k))
    assert final is not None and final["state"] == "succeeded"
    last = final["last_seq"]
    assert seqs == list(range(k + 1, last + 1)), "events after k must arrive gapless and once each"
    assert last == Event.objects.filter(run_id=run.pk).count()


def test_reconnecting_client_resumes_from_its_last_seq():
    run = get_runner().start("http-crud", SLOW)
    wait_for_events(run.pk, 5)
    first, _ = asyncio.run(follow(run.pk, after=0, until_final=False, max_events=5))
    assert first[:5] == [1, 2, 3, 4, 5]
    rest, final = asyncio.run(follow(run.pk, after=first[-1]))
    assert final is not None
    assert first + rest == list(range(1, final["last_seq"] + 1))


def test_finished_run_replays_in_full():
    run = get_runner().start("http-crud", {**SLOW, "rate": 0})
    run = wait_until_finished(run.pk, 30)
    seqs, final = asyncio.run(follow(run.pk, after=0))
    assert seqs == list(range(1, run.events.count() + 1))
    assert final["counts"] == run.summary["counts"]


def test_foreign_origin_is_refused():
    async def attempt() -> bool:
        headers = [(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1:8000")]
        communicator = WebsocketCommunicator(application, "/ws/runs/1/", headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert asyncio.run(attempt()) is False


@pytest.mark.parametrize("path, code", [
    ("/ws/runs/999999/", 4404),
    ("/ws/runs/{run}/?after=-3", 4400),
    ("/ws/runs/{run}/?after=" + str(10**30), 4400),
    ("/ws/runs/{run}/?after=" + str(2**63), 4400),
])
def test_bad_socket_requests_get_a_reason_and_a_close_code(path, code):
    run = Run.objects.create(workflow="http-crud")

    async def attempt() -> tuple[dict, dict]:
        communicator = WebsocketCommunicator(application, path.format(run=run.pk), headers=ORIGIN)
        connected, _ = await communicator.connect()
        assert connected
        message = json.loads(await communicator.receive_from())
        closed = await communicator.receive_output()
        await communicator.disconnect()
        return message, closed

    message, closed = asyncio.run(attempt())
    assert message["type"] == "error" and message["error"]
    assert closed == {"type": "websocket.close", "code": code}


@pytest.mark.parametrize("frame, fragment", [
    ('{"type": "ack", "seq": 1e999}', "seq must be a non-negative integer"),
    ('{"type": "ack", "seq": -1}', "seq must be a non-negative integer"),
    ('{"type": "ack", "seq": "5"}', "seq must be a non-negative integer"),
    ('{"type": "ack", "seq": true}', "seq must be a non-negative integer"),
    ('{"type": "ack"}', "seq must be a non-negative integer"),
    ("[" * 2000 + "]" * 2000, "nested deeper than"),
    ("[" * 30_000 + "]" * 30_000, "at most 4096 characters"),
    ("not json", "malformed JSON"),
    ("[1, 2]", "a frame is a JSON object"),
])
def test_bad_frames_close_with_4400_and_say_why(frame, fragment):
    run = Run.objects.create(workflow="http-crud")

    async def attempt() -> tuple[list[dict], dict]:
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=ORIGIN)
        connected, _ = await communicator.connect()
        assert connected
        assert json.loads(await communicator.receive_from())["type"] == "summary"
        await communicator.send_to(text_data=frame)
        message = json.loads(await communicator.receive_from())
        closed = await communicator.receive_output()
        await communicator.disconnect()
        return message, closed

    message, closed = asyncio.run(attempt())
    assert message["type"] == "error" and fragment in message["error"]
    assert closed == {"type": "websocket.close", "code": 4400}


def test_a_huge_ack_is_clamped_not_an_error():
    run = Run.objects.create(workflow="http-crud")

    async def attempt() -> dict:
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=ORIGIN)
        await communicator.connect()
        await communicator.receive_from()
        await communicator.send_to(text_data=json.dumps({"type": "ack", "seq": 10**30}))
        await communicator.send_to(text_data=json.dumps({"type": "hello"}))  # another type: ignored
        # Frames are handled in order: the first answer is to this one, so the two above had none.
        await communicator.send_to(text_data="[1]")
        message = json.loads(await communicator.receive_from())
        await communicator.disconnect()
        return message

    assert "a frame is a JSON object" in asyncio.run(attempt())["error"]


@pytest.mark.parametrize("path", ["/ws/runs/abc/", "/ws/nope/", "/ws/runs/1/extra/", "/"])
def test_unknown_socket_paths_are_refused_at_the_handshake(path):
    async def attempt() -> bool:
        communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert asyncio.run(attempt()) is False
