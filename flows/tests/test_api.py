"""The HTTP API contract, including every kind of bad input (4xx with a message, never 500)."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from flows.models import Run
from flows.runner import get_runner, wait_until_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

FAST = {"persons": 2, "repeat": 2, "delay_ms": 0, "rate": 0}


def post(client: Client, path: str, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **extra)


@pytest.fixture
def client():
    return Client()


def test_workflow_catalog(client):
    response = client.get("/api/workflows/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    by_slug = {w["slug"]: w for w in response.json()}
    crud = by_slug["http-crud"]
    assert crud["pattern"] == "sync" and crud["protocol"] == "http"
    assert set(crud["params"]["persons"]) >= {"type", "default", "min", "max", "choices", "help"}


def test_start_run_and_read_it_back(client):
    response = post(client, "/api/runs/", {"workflow": "http-crud", "params": FAST})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"id", "url", "ws", "state"}
    assert body["url"] == f"/api/runs/{body['id']}/" and body["ws"] == f"/ws/runs/{body['id']}/"
    run = wait_until_finished(body["id"], 60)
    assert run.state == "succeeded", run.error

    summary = client.get(body["url"]).json()
    for key in ("id", "workflow", "params", "state", "started_at", "finished_at", "counts", "latency_ms", "error", "brokers"):
        assert key in summary
    assert set(summary["counts"]) >= {"published", "delivered", "processed", "effects", "duplicates", "lost"}
    assert summary["params"] == {**FAST, "error_rate": 0.0}
    assert summary["counts"]["published"] == summary["expected"] == 3 * 2 + 3 * 2 + 5

    # Paging through events is gapless and ``next`` chains the pages.
    seen, after = [], 0
    while True:
        page = client.get(f"/api/runs/{body['id']}/events/", {"after": after, "limit": 7}).json()
        if not page["events"]:
            assert page["next"] == after
            break
        seen.extend(e["seq"] for e in page["events"])
        after = page["next"]
    assert seen == list(range(1, summary["last_seq"] + 1))

    listed = client.get("/api/runs/").json()["runs"]
    assert listed[0]["id"] == body["id"] and listed[0]["state"] == "succeeded"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"workflow": "nope"}, "workflow"),
        ({"params": {}}, "workflow"),
        ({"workflow": 5}, "workflow"),
        ({"workflow": "http-crud", "params": {"persons": "many"}}, "persons"),
        ({"workflow": "http-crud", "params": {"persons": 0}}, "persons"),
        ({"workflow": "http-crud", "params": {"persons": 10_000}}, "persons"),
        ({"workflow": "http-crud", "params": {"error_rate": 2}}, "error_rate"),
        ({"workflow": "http-crud", "params": {"bogus": 1}}, "bogus"),
        ({"workflow": "http-crud", "params": [1]}, "params"),
        ({"workflow": "http-crud", "extra": 1}, "extra"),
        ([1, 2], "body"),
        ("{not json", "body"),
    ],
)
def test_bad_run_requests_are_400_with_the_field_named(client, body, field):
    response = post(client, "/api/runs/", body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in errors and errors[field]
    assert Run.objects.count() == 0


def test_oversized_body_is_413(client):
    response = post(client, "/api/runs/", "{" + " " * 70_000 + "}")
    assert response.status_code == 413


DEEP = "[" * 30_000 + "]" * 30_000


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ('{"workflow": "http-crud", "params": {"error_rate": ' + "9" * 401 + "}}", "error_rate", "finite number"),
        (DEEP, "body", "nested deeper than"),
        ('{"workflow": "http-crud", "params": ' + DEEP + "}", "body", "nested deeper than"),
        ('{"workflow": "http-crud", "params": {"persons": ' + "[" * 100 + "]" * 100 + "}}", "body", "nested deeper"),
    ],
)
def test_hostile_json_is_400_naming_the_problem(client, body, field, fragment):
    response = post(client, "/api/runs/", body)
    assert response.status_code == 400, response.content[:200]
    assert fragment in response.json()["errors"][field]
    assert Run.objects.count() == 0


def test_hostile_json_in_actions_is_400(client):
    run = Run.objects.create(workflow="http-crud")
    response = post(client, f"/api/runs/{run.pk}/actions/", '{"action": ' + DEEP + "}")
    assert response.status_code == 400 and "nested deeper than" in response.json()["errors"]["body"]


def csrf_client() -> tuple[Client, str]:
    """A client that, like a browser, passes Django's CSRF check (which reads form bodies)."""
    client = Client(enforce_csrf_checks=True)
    return client, client.get("/api/workflows/").cookies["csrftoken"].value


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=BoUnDaRy", "application/x-www-form-urlencoded",
                                          "text/plain", ""])
def test_a_body_that_is_not_json_is_415(content_type):
    client, token = csrf_client()
    body = (b"--BoUnDaRy\r\nContent-Disposition: form-data; name=\"workflow\"\r\n\r\nhttp-crud\r\n--BoUnDaRy--\r\n"
            if content_type.startswith("multipart") else b"workflow=http-crud")
    response = client.post("/api/runs/", body, content_type=content_type, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 415
    assert "application/json" in response.json()["errors"]["content_type"]


def test_a_multipart_form_is_415():
    client, token = csrf_client()
    response = client.post("/api/runs/", {"workflow": "http-crud", "params": "{}"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 415 and "multipart/form-data" in response.json()["errors"]["content_type"]
    run = Run.objects.create(workflow="http-crud")
    response = client.post(f"/api/runs/{run.pk}/actions/", {"action": "cancel"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 415


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_10_mb_body_is_a_json_413(content_type):
    client, token = csrf_client()
    response = client.post("/api/runs/", b"{" + b" " * (10 * 1024 * 1024) + b"}", content_type=content_type,
                           HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 413 and response["Content-Type"] == "application/json"
    assert "over the limit" in response.json()["errors"]["body"]


def test_error_bodies_are_capped():
    params = {f"p{i}": 1 for i in range(5000)}
    response = post(Client(), "/api/runs/", {"workflow": "http-crud", "params": params})
    assert response.status_code == 400
    assert len(response.content) < 4096, f"{len(response.content)} bytes"
    errors = response.json()["errors"]
    assert "p0" in errors and "unknown parameter" in errors["p0"]
    assert errors["more"] == "4980 more problems not shown (of 5000)"
    long_value = {"workflow": "http-crud", "params": {"persons": "x" * 60_000}}
    response = post(Client(), "/api/runs/", long_value)
    assert response.status_code == 400 and len(response.content) < 1024


def test_unknown_runs_are_404(client):
    for path in ("/api/runs/999999/", "/api/runs/999999/events/"):
        response = client.get(path)
        assert response.status_code == 404 and "run" in response.json()["errors"]
    assert post(client, "/api/runs/999999/actions/", {"action": "cancel"}).status_code == 404
    response = client.get("/api/nothing-here/")
    assert response.status_code == 404 and "errors" in response.json()


def test_bad_event_paging_is_400(client):
    run = Run.objects.create(workflow="http-crud")
    for query, field in (({"after": "x"}, "after"), ({"after": -1}, "after"), ({"limit": 0}, "limit"),
                         ({"limit": 10**6}, "limit"), ({"after": 10**30}, "after"), ({"after": 2**63}, "after"),
                         ({"after": "9" * 5000}, "after")):
        response = client.get(f"/api/runs/{run.pk}/events/", query)
        assert response.status_code == 400 and field in response.json()["errors"]


def test_actions(client):
    slow = {"persons": 50, "repeat": 20, "delay_ms": 0, "rate": 5}
    run_id = post(client, "/api/runs/", {"workflow": "http-crud", "params": slow}).json()["id"]
    assert post(client, f"/api/runs/{run_id}/actions/", {"action": "explode"}).status_code == 400
    assert post(client, f"/api/runs/{run_id}/actions/", {"target": "x"}).status_code == 400
    response = post(client, f"/api/runs/{run_id}/actions/", {"action": "cancel"})
    assert response.status_code == 202
    run = wait_until_finished(run_id, 30)
    assert run.state == "cancelled" and "cancelled" in run.error
    response = post(client, f"/api/runs/{run_id}/actions/", {"action": "cancel"})
    assert response.status_code == 409 and "live runs only" in response.json()["errors"]["run"]


def test_too_many_live_runs_is_429(client, settings):
    settings.FLOWS_MAX_LIVE_RUNS = 1
    slow = {"persons": 50, "repeat": 20, "delay_ms": 0, "rate": 5}
    first = post(client, "/api/runs/", {"workflow": "http-crud", "params": slow}).json()["id"]
    try:
        response = post(client, "/api/runs/", {"workflow": "http-crud", "params": FAST})
        assert response.status_code == 429 and "limit 1" in response.json()["errors"]["run"]
    finally:
        get_runner().act(first, "cancel")
        wait_until_finished(first, 30)


def test_run_times_out_with_a_clear_error():
    run = get_runner().start("http-crud", {"persons": 50, "repeat": 20, "delay_ms": 0, "error_rate": 0.0, "rate": 2},
                             timeout_s=0.5)
    started = time.monotonic()
    run = wait_until_finished(run.pk, 30)
    assert time.monotonic() - started < 10
    assert run.state == "failed" and "timed out after 0.5 s" in run.error
    # What was recorded before the timeout is kept, ending with the error and done events.
    kinds = list(run.events.order_by("seq").values_list("kind", flat=True))
    assert kinds[-2:] == ["error", "done"] and "request" in kinds


def test_csrf_is_enforced_for_browser_sessions():
    client = Client(enforce_csrf_checks=True)
    response = post(client, "/api/runs/", {"workflow": "http-crud", "params": FAST})
    assert response.status_code == 403 and "X-CSRFToken" in response.json()["errors"]["csrf"]
    token = client.get("/api/workflows/").cookies["csrftoken"].value
    response = post(client, "/api/runs/", {"workflow": "http-crud", "params": FAST}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201
    wait_until_finished(response.json()["id"], 60)


def test_health_reports_every_broker(client, broker_mode):
    broker_mode("mqtt", "external", "mqtt://127.0.0.1:1")
    started = time.monotonic()
    body = client.get("/api/health/").json()
    # The checks run in parallel, each bounded by 2 s; the rest is room for a loaded machine.
    assert time.monotonic() - started < 10
    assert set(body["brokers"]) >= {"kafka", "amqp", "mqtt", "redis"}
    for info in body["brokers"].values():
        assert set(info) >= {"ok", "url", "mode", "name"}
    mqtt = body["brokers"]["mqtt"]
    assert mqtt["ok"] is False and mqtt["mode"] == "external" and "127.0.0.1:1" in mqtt["error"]
