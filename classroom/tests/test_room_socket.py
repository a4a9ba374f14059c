"""The room socket over real WebSockets, on the in-memory layer and on channels-redis.

One contract class, one subclass per channel layer (as flows/tests/test_pipeline_backpressure.py
does): following with measured latency, late joiners, refusals, predict-then-reveal.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager

import pytest
from channels.testing import WebsocketCommunicator

from classroom import ratelimit, rooms
from classroom.consumers import ANSWER_BURST
from classroom.models import Room
from classroom.tests.conftest import TOKEN, instructor_session_cookie
from classroom.views import STUDENT_KEY
from dashboard.asgi import application
from flows.models import Run
from flows.tests.test_pipeline_backpressure import redis_layer_config

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

ORIGIN = "http://127.0.0.1:8000"
RECEIVE_S = 10  # a deadline for a frame that must come, not a timing claim


def headers(cookie: str | None = None) -> list[tuple[bytes, bytes]]:
    sent = [(b"origin", ORIGIN.encode()), (b"host", b"127.0.0.1:8000")]
    if cookie is not None:
        sent.append((b"cookie", f"sessionid={cookie}".encode()))
    return sent


def student_cookie(name: str) -> str:
    return instructor_session_cookie(token="", **{STUDENT_KEY: f"student-{name}"})


@asynccontextmanager
async def connected(code: str, cookie: str | None = None):
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{code}/", headers=headers(cookie))
    ok, _ = await communicator.connect()
    assert ok
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def receive(communicator: WebsocketCommunicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=RECEIVE_S))


async def receive_until(communicator: WebsocketCommunicator, kind: str) -> dict:
    while True:
        frame = await receive(communicator)
        if frame["type"] == kind:
            return frame


async def send(communicator: WebsocketCommunicator, frame: dict) -> None:
    await communicator.send_to(text_data=json.dumps(frame))


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def moves(run: int, count: int) -> Iterator[dict]:
    """Seek, step, play, pause, speed and inspector-open, in turn."""
    speeds = [0.1, 0.5, 1.0, 2.0, 10.0]
    for n in range(count):
        yield {"type": "position", "run": run, "seq": n * 3 % 97, "playing": n % 3 == 0,
               "speed": speeds[n % len(speeds)], "message": f"m{n}" if n % 4 == 0 else None}


class RoomContract:
    @pytest.fixture
    def layer(self, settings):  # each subclass picks its channel layer
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def classroom(self, settings, layer, classroom_token):
        settings.FLOWS_ALLOWED_ORIGINS = [ORIGIN]

    @pytest.fixture
    def room(self) -> Room:
        return rooms.create_room(Run.objects.create(workflow="amqp-routing").pk)

    def test_three_followers_follow_fifty_moves(self, room):
        latencies: list[float] = []

        async def scenario() -> None:
            async with connected(room.code, instructor_session_cookie()) as teacher, \
                    connected(room.code) as a, connected(room.code) as b, connected(room.code) as c:
                followers = [a, b, c]
                for f in [teacher, *followers]:
                    assert (await receive(f))["type"] == "follow"

                async def arrival(follower: WebsocketCommunicator, started: float) -> tuple[dict, float]:
                    frame = await receive(follower)
                    return frame, time.perf_counter() - started

                for move in moves(room.run, 50):
                    started = time.perf_counter()
                    await send(teacher, move)
                    for frame, took in await asyncio.gather(*(arrival(f, started) for f in followers)):
                        assert frame == {**move, "type": "follow"}
                        latencies.append(took)
                assert await teacher.receive_nothing(), "the instructor gets no echo of its own moves"

        asyncio.run(scenario())
        figure = p95(latencies)
        print(f"\nfollow latency over 50 moves x 3 followers ({type(self).__name__}): "
              f"p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {figure * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms (target p95 < 200 ms)")
        assert len(latencies) == 150
        assert figure < 1.0, "loose bound: a busy 2-core machine must not fail it; the target is 200 ms"

    def test_a_late_follower_starts_at_the_current_position(self, room):
        last = list(moves(room.run, 5))[-1]

        async def scenario() -> dict:
            async with connected(room.code, instructor_session_cookie()) as teacher, connected(room.code) as early:
                await receive(teacher)
                await receive(early)
                for move in moves(room.run, 5):
                    await send(teacher, move)
                    await receive(early)
                async with connected(room.code) as late:
                    return await receive(late)

        assert asyncio.run(scenario()) == {**last, "type": "follow"}
        assert rooms.state(Room.objects.get(pk=room.pk))["seq"] == last["seq"]

    def test_a_followers_instructor_messages_are_refused_and_not_broadcast(self, room):
        async def scenario() -> None:
            async with connected(room.code, instructor_session_cookie()) as teacher, \
                    connected(room.code) as student, connected(room.code) as other:
                for c in (teacher, student, other):
                    await receive(c)
                forged = {"type": "position", "run": room.run, "seq": 42, "playing": True, "speed": 10}
                for frame in (forged, {"type": "ask", "question": "q?", "choices": ["a", "b"]}, {"type": "reveal"}):
                    await send(student, frame)
                    refused = await receive(student)
                    assert refused["type"] == "error" and "only the instructor" in refused["error"]
                # The next thing the others see is the instructor's move, not the forged one.
                real = {"type": "position", "run": room.run, "seq": 7, "playing": False, "speed": 1, "message": None}
                await send(teacher, real)
                assert await receive(other) == {**real, "speed": 1.0, "type": "follow"}
                assert await receive(student) == {**real, "speed": 1.0, "type": "follow"}

        asyncio.run(scenario())
        assert Room.objects.get(pk=room.pk).seq == 7

    def test_a_wrong_session_is_a_follower(self, room):
        async def scenario() -> dict:
            async with connected(room.code, instructor_session_cookie(token="not-" + TOKEN)) as pretender:
                await receive(pretender)
                await send(pretender, {"type": "reveal"})
                return await receive(pretender)

        assert "only the instructor" in asyncio.run(scenario())["error"]

    def test_predict_then_reveal_with_thirty_students(self, room, settings):
        settings.FLOWS_RATE_ANSWERS_PER_S = 1000  # the duplicate is refused for being one, not for its haste
        choices = ["billing", "shipping", "audit"]
        picks = {f"s{n}": choices[n % 3] for n in range(30)}

        async def scenario() -> tuple[list[dict], list[int]]:
            async with connected(room.code, instructor_session_cookie()) as teacher:
                await receive(teacher)
                students = {}
                for name in picks:
                    students[name] = WebsocketCommunicator(
                        application, f"/ws/rooms/{room.code}/",
                        headers=headers(student_cookie(name)))
                    assert (await students[name].connect())[0]
                    assert (await receive(students[name]))["type"] == "follow"
                try:
                    await send(teacher, {"type": "ask", "question": "Which queues get order.eu.paid?",
                                         "choices": choices})
                    for s in students.values():
                        assert await receive(s) == {"type": "ask", "question": "Which queues get order.eu.paid?",
                                                    "choices": choices}
                    counts = []
                    for name, s in students.items():
                        await send(s, {"type": "answer", "choice": picks[name]})
                        assert await receive(s) == {"type": "answered", "choice": picks[name]}
                        counts.append((await receive_until(teacher, "answers"))["count"])
                    # s0 again, on the same socket and from a second tab with the same session.
                    await send(students["s0"], {"type": "answer", "choice": "audit"})
                    assert "already answered" in (await receive(students["s0"]))["error"]
                    async with connected(room.code, student_cookie("s0")) as again:
                        assert (await receive(again))["type"] == "follow"
                        assert (await receive(again))["type"] == "ask", "a late joiner gets the open question"
                        await send(again, {"type": "answer", "choice": "shipping"})
                        assert "already answered" in (await receive(again))["error"]
                        await send(again, {"type": "answer", "choice": "not offered"})
                        assert "choose one of" in (await receive(again))["error"]
                    await send(teacher, {"type": "reveal"})
                    reveals = [await receive_until(teacher, "reveal")]
                    reveals += [await receive(s) for s in students.values()]
                    return reveals, counts
                finally:
                    for s in students.values():
                        await s.disconnect()

        reveals, counts = asyncio.run(scenario())
        assert sorted(counts) == list(range(1, 31)), "the instructor sees every answer counted once"
        assert all(r == {"type": "reveal", "tally": {"billing": 10, "shipping": 10, "audit": 10}} for r in reveals)
        assert rooms.state(Room.objects.get(pk=room.pk))["tally"] == {"billing": 10, "shipping": 10, "audit": 10}

    def test_a_student_answering_in_a_burst_is_cut_off(self, room, settings):
        settings.FLOWS_RATE_ANSWERS_PER_S = 1
        ratelimit.limiter("answers", 1, ANSWER_BURST).clock = lambda: 1000.0  # nothing refills

        async def scenario() -> list[str]:
            async with connected(room.code, instructor_session_cookie()) as teacher, \
                    connected(room.code, student_cookie("eager")) as student:
                await receive(teacher)
                await receive(student)
                await send(teacher, {"type": "ask", "question": "Again?", "choices": ["yes", "no"]})
                await receive(student)
                said = []
                for _ in range(4):
                    await send(student, {"type": "answer", "choice": "yes"})
                    said.append(await receive(student))
                return [f.get("error", f["type"]) for f in said]

        said = asyncio.run(scenario())
        assert said[0] == "answered" and "already answered" in said[1]
        assert all("too many answers" in s for s in said[2:])

    def test_an_unknown_room_closes_with_4404(self):
        async def scenario() -> tuple[dict, dict]:
            async with connected("ZZZZZZ") as nobody:
                return await receive(nobody), await nobody.receive_output(timeout=RECEIVE_S)

        refused, closed = asyncio.run(scenario())
        assert refused["type"] == "error" and "no room" in refused["error"]
        assert closed == {"type": "websocket.close", "code": 4404}


class TestRoomInMemoryLayer(RoomContract):
    @pytest.fixture
    def layer(self, settings):
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


class TestRoomRedisLayer(RoomContract):
    @pytest.fixture
    def layer(self, settings, redis_url):
        settings.CHANNEL_LAYERS = {"default": redis_layer_config(redis_url)}
