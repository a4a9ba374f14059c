"""GET /api/lessons/: the seven lessons of docs/lessons.md, every step runnable as written."""

from __future__ import annotations

import pytest
from django.test import Client

from flows import lessons, registry

pytestmark = pytest.mark.django_db


def test_every_step_names_a_workflow_and_valid_params():
    assert lessons.problems() == []


def test_problems_are_found():
    bad = {"slug": "bad", "title": "bad", "steps": [
        {"workflow": "amqp-redelivery", "params": {"messages": -1}, "narration": "x"},
        {"workflow": "no-such-flow", "params": {}, "narration": "x"},
    ]}
    lessons.LESSONS.append(bad)
    try:
        found = lessons.problems()
    finally:
        lessons.LESSONS.remove(bad)
    assert any("bad step 1: messages" in p for p in found), found
    assert "bad step 2: no workflow no-such-flow" in found


def test_api_lists_the_seven_lessons():
    response = Client().get("/api/lessons/")
    assert response.status_code == 200
    data = response.json()
    assert len(data) == 7
    assert len({lesson["slug"] for lesson in data}) == 7
    for lesson in data:
        assert set(lesson) == {"slug", "title", "steps"} and lesson["steps"]
        for step in lesson["steps"]:
            assert {"workflow", "params", "narration"} <= set(step) <= {
                "workflow", "params", "narration", "pause_at", "question"}
            assert step["workflow"] in registry.WORKFLOWS
            assert step["narration"].strip()
            if "pause_at" in step:
                assert step["pause_at"]["query"].strip()
            if "question" in step:
                question = step["question"]
                assert question["text"].strip()
                assert question.get("choices") or question.get("choices_from") in lessons.CHOICE_SOURCES
                assert "answer" in question or "answer_from" in question


def test_lesson_seven_is_the_redelivery_example():
    seven = Client().get("/api/lessons/").json()[6]
    first, second = seven["steps"][:2]
    assert first["workflow"] == second["workflow"] == "amqp-redelivery"
    assert first["params"]["messages"] == 10 and first["params"]["crash_at"] == 4
    assert first["pause_at"] == {"query": "kind:crash"}
    assert second["params"]["idempotent"] is True and not first["params"].get("idempotent")


def test_lessons_is_read_only():
    assert Client().post("/api/lessons/", data="{}", content_type="application/json").status_code == 405
