"""The Lessons pages: the list, one lesson's steps with their Start buttons, the nav link."""

from __future__ import annotations

import json
import re

import pytest
from django.templatetags.static import static
from django.test import Client

from flows import lessons

pytestmark = pytest.mark.django_db


def test_lessons_page_lists_the_seven_and_the_nav_links_it():
    html = Client().get("/lessons/").content.decode()
    for lesson in lessons.all_lessons():
        assert f'href="/lessons/{lesson["slug"]}/"' in html
    assert re.search(r'<a href="/lessons/"\s+aria-current="page">Lessons</a>', html)
    assert 'href="/lessons/"' in Client().get("/runs/").content.decode()


def test_a_lesson_page_shows_each_step_with_a_start_button_and_its_data():
    response = Client().get("/lessons/exactly-once/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("data-start-step=") == len(lessons.get("exactly-once")["steps"]) == 6
    assert "Will … be processed again?" in html  # the run fills in the message
    assert "<code>kind:crash</code>" in html
    boot = re.search(r'<script id="lesson-boot" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert json.loads(boot) == lessons.get("exactly-once")
    assert f'src="{static("js/lessons-page.js")}"' in html


def test_an_unknown_lesson_is_404():
    assert Client().get("/lessons/no-such-lesson/").status_code == 404
