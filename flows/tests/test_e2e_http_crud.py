"""End to end: daphne on a free port, a run started over HTTP, followed over a real WebSocket."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from dashboard.tests.browser import LiveServer

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def server():
    with LiveServer(suite_database=True) as live:
        yield live


def follow(server: LiveServer, run_id: int, after: int = 0, timeout: float = 60) -> tuple[list[dict], dict]:
    events: list[dict] = []
    url = f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}/?after={after}"
    deadline = time.monotonic() + timeout
    with connect(url, origin=server.url, open_timeout=10) as ws:
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
            if message["type"] == "events":
                events.extend(message["events"])
                ws.send(json.dumps({"type": "ack", "seq": events[-1]["seq"]}))
            elif message["type"] == "summary" and message["summary"]["state"] not in ("pending", "running"):
                return events, message["summary"]
    raise TimeoutError(f"run {run_id} did not finish within {timeout} s")


def test_http_crud_followed_live_over_a_real_websocket(server):
    repeat, persons = 3, 2
    status, created = server.post_json("/api/runs/", {"workflow": "http-crud", "params": {
        "persons": persons, "repeat": repeat, "delay_ms": 5, "rate": 50}})
    assert status == 201, created
    events, summary = follow(server, created["id"])
    assert summary["state"] == "succeeded", summary["error"]

    # Gapless from 1, none twice, and the same log the API serves.
    assert [e["seq"] for e in events] == list(range(1, summary["last_seq"] + 1))
    assert events == server.all_events(created["id"])

    # The summary's counts agree with the events the socket delivered.
    kinds = [e["kind"] for e in events]
    assert summary["counts"]["published"] == kinds.count("request") == kinds.count("response")
    assert summary["counts"]["processed"] == kinds.count("process")
    assert summary["counts"]["effects"] == sum(1 for e in events if e["kind"] == "process" and e["attrs"]["effect"])
    assert summary["progress"]["done"] == summary["expected"]

    # ...and with the persons service's real state, as it answered GET /persons over HTTP.
    listings = [e["attrs"]["body"] for e in events if e["kind"] == "response" and e["attrs"]["step"] == "inspect"]
    after_creating, after_one_put, after_puts, after_posts, after_deleting = listings
    assert len(after_creating) == persons
    assert after_one_put == after_puts, "repeated PUTs must leave the state as one PUT did"
    assert len(after_posts) == len(after_puts) + repeat, "each repeated POST creates another person"
    assert after_deleting == []
    assert summary["result"]["put"]["idempotent"] is True
    assert summary["counts"]["effects"] == persons + 1 + repeat + persons + repeat  # creates, 1 PUT, POSTs, deletes


def test_bad_input_over_http_is_a_4xx(server):
    status, body = server.post_json("/api/runs/", {"workflow": "http-crud", "params": {"persons": -1}})
    assert status == 400 and "persons" in body["errors"]
    status, body = server.post_json("/api/runs/", {"workflow": "nope"})
    assert status == 400 and "workflow" in body["errors"]


def test_the_live_server_refuses_foreign_origins_and_sends_security_headers(server):
    other_port = f"http://127.0.0.1:{server.port + 1}"
    for origin in (other_port, "http://evil.example"):
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{server.port}/ws/runs/1/", origin=origin, open_timeout=10)
        assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:  # not a run's socket
        connect(f"ws://127.0.0.1:{server.port}/ws/runs/abc/", origin=server.url, open_timeout=10)
    assert refused.value.response.status_code == 403

    request = urllib.request.Request(f"{server.url}/api/runs/", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json", "Origin": other_port})
    with pytest.raises(urllib.error.HTTPError) as forbidden:
        urllib.request.urlopen(request, timeout=15)
    assert forbidden.value.code == 403 and "origin" in json.loads(forbidden.value.read())["errors"]

    with urllib.request.urlopen(f"{server.url}/static/js/api.js", timeout=15) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(f"{server.url}/", timeout=15) as response:
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
