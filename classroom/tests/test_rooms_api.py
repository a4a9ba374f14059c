"""Rooms over HTTP: create, read, join; and the room socket's frame rules on their own."""

from __future__ import annotations

import json

import pytest

from classroom import protocol
from classroom.models import CODE_ALPHABET, CODE_LENGTH, Room
from classroom.views import STUDENT_KEY
from flows.models import Run

pytestmark = pytest.mark.django_db


def create(client, body: object = None):
    return client.post("/api/rooms/", json.dumps(body if body is not None else {}), content_type="application/json")


def test_a_room_is_created_with_a_short_unambiguous_code_and_a_join_url(client):
    run = Run.objects.create(workflow="amqp-routing")
    created = create(client, {"run": run.pk})
    assert created.status_code == 201
    body = created.json()
    code = body["code"]
    assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
    assert not set(code) & set("0O1lIL")
    assert body["join_url"] == f"http://testserver/join/{code}/"
    assert body["run"] == run.pk and body["seq"] == 0 and body["playing"] is False and body["speed"] == 1.0
    assert Room.objects.get(code=code).run == run.pk


def test_a_room_without_a_run_waits_for_one(client):
    body = create(client).json()
    assert body["run"] is None and body["question"] is None


@pytest.mark.parametrize("body, field", [
    ({"run": "7"}, "run"),
    ({"run": True}, "run"),
    ({"run": -1}, "run"),
    ({"run": 987654}, "run"),
    ({"room": 1}, "room"),
    ([1], "body"),
])
def test_bad_room_requests_say_what_is_wrong(client, body, field):
    refused = create(client, body)
    assert refused.status_code == 400 and field in refused.json()["errors"]
    assert not Room.objects.exists()


def test_a_rooms_state_is_readable_by_anyone_and_codes_ignore_case(client):
    code = create(client).json()["code"]
    state = client.get(f"/api/rooms/{code.lower()}/")
    assert state.status_code == 200
    assert state.json()["code"] == code and state.json()["answers"] == 0 and state.json()["tally"] is None


def test_an_unknown_room_is_404_as_json_and_its_join_page_is_404(client):
    missing = client.get("/api/rooms/ZZZZZZ/")
    assert missing.status_code == 404 and "no room" in missing.json()["errors"]["room"]
    assert client.get("/join/ZZZZZZ/").status_code == 404


def test_the_join_page_boots_the_follower_and_gives_the_browser_a_student_id(client):
    run = Run.objects.create(workflow="kafka-partitions")
    code = create(client, {"run": run.pk}).json()["code"]
    page = client.get(f"/join/{code}/")
    assert page.status_code == 200
    boot = page.context["boot"]
    assert boot["code"] == code and boot["run"] == run.pk and boot["ws"] == f"/ws/rooms/{code}/"
    assert boot["position"] == {"run": run.pk, "seq": 0, "playing": False, "speed": 1.0, "message": None}
    assert boot["instructor"] is True, "no token applies in this test: everyone is the instructor"
    assert 'id="room-boot"' in page.content.decode()
    student = client.session[STUDENT_KEY]
    client.get(f"/join/{code}/")
    assert client.session[STUDENT_KEY] == student, "the same browser stays the same student"


# -- frames ------------------------------------------------------------------------------


POSITION = {"type": "position", "run": 3, "seq": 10, "playing": True, "speed": 2}


def test_a_good_position_is_normalised():
    assert protocol.parse(json.dumps(POSITION)) == {**POSITION, "speed": 2.0, "message": None}
    assert protocol.parse(json.dumps({**POSITION, "message": 17}))["message"] == "17"


@pytest.mark.parametrize("frame, fragment", [
    ({**POSITION, "speed": 0}, "speed must be"),
    ({**POSITION, "speed": 11}, "speed must be"),
    ({**POSITION, "seq": -1}, "seq must be"),
    ({**POSITION, "seq": 2**60}, "seq must be"),
    ({**POSITION, "run": None}, "run must be"),
    ({**POSITION, "playing": "yes"}, "playing must be"),
    ({**POSITION, "message": "x" * 201}, "message must be"),
    ({"type": "ask", "question": "q?", "choices": ["only one"]}, "2 to 8"),
    ({"type": "ask", "question": "q?", "choices": [str(n) for n in range(9)]}, "2 to 8"),
    ({"type": "ask", "question": "q?", "choices": ["a", "a"]}, "differ"),
    ({"type": "ask", "question": "q?", "choices": ["a", 2]}, "each choice"),
    ({"type": "ask", "question": "", "choices": ["a", "b"]}, "question must be"),
    ({"type": "ask", "question": "q" * 301, "choices": ["a", "b"]}, "question must be"),
    ({"type": "answer", "choice": "c" * 101}, "choice must be"),
    ({"type": "answer"}, "choice must be"),
    ({"type": "dance"}, "unknown type"),
    ([1, 2], "JSON object"),
])
def test_bad_frames_are_refused_with_a_reason(frame, fragment):
    with pytest.raises(protocol.FrameError, match=fragment):
        protocol.parse(json.dumps(frame))


@pytest.mark.parametrize("text, fragment", [
    ("x" * (protocol.MAX_CLIENT_FRAME + 1), "at most 4096 characters"),
    ("[" * 2000 + "]" * 2000, "nested deeper"),
    ("not json", "malformed JSON"),
    (None, "JSON text"),
])
def test_frames_are_bounded(text, fragment):
    with pytest.raises(protocol.FrameError, match=fragment):
        protocol.parse(text)


def test_the_largest_ask_fits_a_frame():
    largest = {"type": "ask", "question": "q" * protocol.MAX_QUESTION,
               "choices": [f"{n}" * protocol.MAX_CHOICE for n in range(protocol.MAX_CHOICES)]}
    assert len(json.dumps(largest)) < protocol.MAX_CLIENT_FRAME
    assert protocol.parse(json.dumps(largest))["choices"] == largest["choices"]
