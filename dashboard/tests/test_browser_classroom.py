"""Lessons and classroom mode in the browser: a lesson step pauses, asks and reveals; an
instructor's room page and a follower's page in two browser contexts stay on the same event;
the room's QR code, as drawn on the screen, decodes to the join URL."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from dashboard.tests import browser
from flows.tests.polling import wait_until

zxingcpp = pytest.importorskip("zxingcpp")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def png_grey(data: bytes) -> memoryview:
    """A Playwright screenshot (8-bit RGB/RGBA PNG) as a grey-scale buffer zxing-cpp reads."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(row)
        previous = row
    grey = bytearray(width * height)
    for y, row in enumerate(rows):
        for x in range(width):
            r, g, b = row[x * channels:x * channels + 3]
            grey[y * width + x] = (r * 299 + g * 587 + b * 114) // 1000
    return memoryview(bytes(grey)).cast("B", (height, width))


def event_position(page: Any) -> str:
    """What the player's status line says first: "event N of M"."""
    return page.locator("#player-status").inner_text().split(" · ")[0]


def same_position(instructor: Any, follower: Any) -> str:
    """Wait until the follower shows the instructor's "event N of M"; return it."""
    wait_until(lambda: event_position(follower) == event_position(instructor), timeout=15,
               what="the follower shows the instructor's event")
    return event_position(follower)


def test_lesson_step_pauses_at_the_crash_asks_and_shows_the_truth(daphne_server, browser_page):
    page = browser_page
    page.goto(f"{daphne_server.url}/lessons/")
    page.click("text=7 · Exactly-once consumption cannot be guaranteed")
    page.click("[data-start-step='1']")
    page.wait_for_url(re.compile(r"/runs/\d+/\?lesson=exactly-once&step=1$"))
    run_id = int(re.search(r"/runs/(\d+)/", page.url).group(1))
    page.locator(".lesson-question:not([hidden])").wait_for()
    events = daphne_server.all_events(run_id)
    crash = next(i for i, ev in enumerate(events) if ev["kind"] == "crash")
    # Paused right after the first crash, asking about the message the consumer held.
    assert page.locator("#player").get_attribute("data-index") == str(crash + 1)
    assert page.locator("#player").get_attribute("data-playing") == "false"
    message = events[crash]["message_id"]
    assert page.locator(".lesson-question .q-text").inner_text() == f"? Will {message} be processed again?"
    page.click(".lesson-question button.choice[data-choice='yes']")
    page.click("[data-lesson='reveal']")
    assert browser.wait_until_finished(page, timeout_s=90) == "succeeded"
    processed = sum(1 for ev in daphne_server.all_events(run_id) if ev["kind"] == "process" and ev["message_id"] == message)
    assert processed == 2
    truth = f"✓ The answer: yes — the run: {processed} events match “kind:process message:{message}”."
    page.locator(".lesson-question .truth", has_text=truth).wait_for()
    assert "right ✓" in page.locator(".lesson-question .your-answer").inner_text()
    assert page.locator("[data-lesson='next']").inner_text() == "Next: step 2 ▶"


def test_follower_follows_the_instructor_and_the_qr_code_decodes_to_the_join_url(daphne_server, chromium_browser):
    status, run = daphne_server.post_json("/api/runs/", {"workflow": "amqp-redelivery",
                                                         "params": {"messages": 6, "crash_at": 2, "rate": 0, "work_ms": 20}})
    assert status == 201, run
    instructor, instructor_errors = browser.new_page(chromium_browser)
    follower, follower_errors = browser.new_page(chromium_browser)
    try:
        instructor.goto(f"{daphne_server.url}/runs/{run['id']}/")
        assert browser.wait_until_finished(instructor) == "succeeded"
        browser.reveal_all(instructor)
        instructor.click("[data-room='open']")
        join = instructor.locator(".room-join .join-url").inner_text()
        code = instructor.locator(".room-join .room-code").inner_text()
        assert join == f"{daphne_server.url}/join/{code}/"
        instructor.locator(".room-connection[data-state='open']").wait_for()

        # The QR code on the screen decodes to the join URL.
        found = zxingcpp.read_barcodes(png_grey(instructor.locator(".room-join .qr").screenshot()),
                                       formats=zxingcpp.BarcodeFormat.QRCode)
        assert [b.text for b in found] == [join]

        # Seek before the student joins: the late joiner starts where the instructor is.
        instructor.keyboard.press("Home")
        for _ in range(5):
            instructor.keyboard.press("ArrowRight")
        follower.goto(join)
        follower.wait_for_url(re.compile(rf"/runs/{run['id']}/\?follow={code}$"))
        assert same_position(instructor, follower) == f"event 5 of {len(daphne_server.all_events(run['id']))}"
        assert follower.locator("#player [data-player='play']").is_hidden()

        # Step and seek move the follower too.
        instructor.keyboard.press("ArrowLeft")
        assert same_position(instructor, follower).startswith("event 4 of")
        instructor.locator("#player-seek").evaluate(
            "(el) => { el.value = '9'; el.dispatchEvent(new Event('input', { bubbles: true })); }")
        assert same_position(instructor, follower).startswith("event 9 of")

        # The inspector the instructor opens opens on the follower's screen.
        instructor.locator("#event-log tbody tr[data-message]").first.click()
        opened = instructor.evaluate("() => window.flowRun.inspector.selected")
        assert opened
        wait_until(lambda: follower.evaluate("() => window.flowRun.inspector.selected") == opened, timeout=15,
                   what="the follower's inspector opens the instructor's message")
        # ...and closes when the instructor closes it (the drawer covers the room controls).
        instructor.keyboard.press("Escape")
        wait_until(lambda: follower.evaluate("() => window.flowRun.inspector.selected") is None, timeout=15,
                   what="the follower's inspector closes with the instructor's")

        # Predict, then reveal.
        instructor.fill(".ask-question", "Will the crashed message be processed again?")
        instructor.fill(".ask-choices", "yes\nno")
        instructor.click("[data-room='ask']")
        follower.locator(".room-question:not([hidden]) button.choice[data-choice='yes']").click()
        instructor.locator(".answer-count", has_text="1 answer").wait_for()
        browser.screenshot(follower, "classroom-follower")
        instructor.click("[data-room='reveal']")
        follower.locator(".room-question .tally-row[data-choice='yes']", has_text="1 (100%)").wait_for()
        instructor.locator(".room-ask .tally-row[data-choice='no']", has_text="0 (0%)").wait_for()
        browser.screenshot(instructor, "classroom-instructor")

        # The instructor goes on to another run (a lesson's Next): the room goes along, and so do the students.
        status, second = daphne_server.post_json("/api/runs/", {"workflow": "amqp-redelivery",
                                                                "params": {"messages": 3, "crash_at": 0, "rate": 0}})
        assert status == 201, second
        instructor.goto(f"{daphne_server.url}/runs/{second['id']}/")
        instructor.locator(f".room-join .room-code:text-is('{code}')").wait_for()
        follower.wait_for_url(re.compile(rf"/runs/{second['id']}/\?follow={code}$"))
    finally:
        instructor.context.close()
        follower.context.close()
    assert not instructor_errors and not follower_errors, instructor_errors + follower_errors
