"""The runs history filters and the exports of a run (events as NDJSON and CSV, summary as JSON)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from flows import eventstore, export
from flows.models import Run

pytestmark = [pytest.mark.django_db, pytest.mark.stack]


def make_run(workflow: str = "http-crud", state: str = "succeeded", **counts: int) -> Run:
    summary = {"counts": {"published": 3, "delivered": 3, "processed": 3, "effects": 3, "duplicates": 0,
                          "lost": 0, "errors": 0, "events": 0, **counts}}
    return Run.objects.create(workflow=workflow, state=state, params={"messages": 3}, summary=summary)


def listed(client: Client, query: str) -> list[int]:
    response = client.get(f"/api/runs/?{query}")
    assert response.status_code == 200, response.content
    return [run["id"] for run in response.json()["runs"]]


def test_runs_filter_by_workflow_state_duplicates_and_losses():
    client = Client()
    plain = make_run()
    dup = make_run("amqp-redelivery", duplicates=2)
    lost = make_run("kafka-consumer-groups", lost=1)
    both = make_run("kafka-consumer-groups", state="failed", duplicates=1, lost=4)
    live = Run.objects.create(workflow="amqp-redelivery", state="running")  # no summary yet

    assert listed(client, "") == [live.pk, both.pk, lost.pk, dup.pk, plain.pk]
    assert listed(client, "workflow=kafka-consumer-groups") == [both.pk, lost.pk]
    assert listed(client, "state=failed") == [both.pk]
    assert listed(client, "duplicates=1") == [both.pk, dup.pk]
    assert listed(client, "lost=1") == [both.pk, lost.pk]
    assert listed(client, "duplicates=1&lost=1") == [both.pk]
    assert listed(client, "workflow=amqp-redelivery&duplicates=1") == [dup.pk]
    assert listed(client, "workflow=&state=&duplicates=0&lost=") == [live.pk, both.pk, lost.pk, dup.pk, plain.pk]
    assert listed(client, "duplicates=1&limit=1") == [both.pk]


@pytest.mark.parametrize("query, field", [
    ("workflow=nope", "workflow"), ("state=done", "state"), ("duplicates=maybe", "duplicates"),
    ("lost=2", "lost"), ("limit=x", "limit"),
])
def test_runs_filter_refuses_bad_values(query, field):
    response = Client().get(f"/api/runs/?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


EVENTS = [
    (1, 0.0, "publish", "producer", "m1", 1, False, {"key": "k,1", "note": 'say "hi"\nthere'}),
    (2, 1.5, "deliver", "consumer:a", "m1", 1, False, {"queue": "q"}),
    (3, 2.25, "deliver", "consumer:b", "m1", 2, True, {"queue": "q", "reason": "redelivered after a crash"}),
    (4, 3.0, "done", "runner", "", 1, False, {"state": "succeeded", "lost": 0, "ü": "ß"}),
]


@pytest.fixture
def recorded() -> Run:
    run = make_run(events=len(EVENTS))
    eventstore.write_batch(run.pk, eventstore.encode_batch(EVENTS))
    return run


def body(response) -> str:
    async def collect() -> bytes:
        return b"".join([part async for part in response.streaming_content])

    assert response.streaming
    return async_to_sync(collect)().decode()


def api_events(client: Client, run: Run) -> list[dict]:
    return client.get(f"/api/runs/{run.pk}/events/?limit=5000").json()["events"]


def download(client: Client, run: Run, name: str, content_type: str) -> str:
    """The text of an export, after checking it is served as a file of that type."""
    response = client.get(f"/api/runs/{run.pk}/{name}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-{name}"'
    return body(response)


def test_events_ndjson_is_the_api_events_line_by_line(recorded):
    client = Client()
    parsed = [json.loads(line) for line in download(client, recorded, "events.ndjson", "application/x-ndjson").splitlines()]
    expected = api_events(client, recorded)
    assert parsed == expected and len(parsed) == len(EVENTS)
    assert [list(event) for event in parsed] == [list(event) for event in expected]  # same field order


def test_events_csv_has_every_event_with_attrs_as_json(recorded):
    client = Client()
    rows = list(csv.DictReader(io.StringIO(download(client, recorded, "events.csv", "text/csv"))))
    expected = api_events(client, recorded)
    assert list(rows[0]) == ["seq", "t_ms", "kind", "actor", "message_id", "attempt", "duplicate", "attrs"]
    assert len(rows) == len(expected)
    for row, event in zip(rows, expected):
        assert int(row["seq"]) == event["seq"] and float(row["t_ms"]) == event["t_ms"]
        assert (row["kind"], row["actor"], row["message_id"]) == (event["kind"], event["actor"], event["message_id"])
        assert int(row["attempt"]) == event["attempt"]
        assert row["duplicate"] == ("true" if event["duplicate"] else "false")
        assert json.loads(row["attrs"]) == event["attrs"]


def test_events_are_read_from_the_database_a_chunk_at_a_time(recorded, monkeypatch):
    reads = []
    real = eventstore.read_events
    monkeypatch.setattr(eventstore, "read_events", lambda *args: reads.append(args) or real(*args))

    async def first_part() -> bytes:
        parts = export.stream(recorded.pk, export.ndjson_lines, chunk=2)
        part = await parts.__anext__()
        await parts.aclose()
        return part

    part = async_to_sync(first_part)()
    assert [json.loads(line)["seq"] for line in part.decode().splitlines()] == [1, 2]
    assert reads == [(recorded.pk, 0, 2)]  # the rest of the log was never read


def test_summary_download_is_the_run_summary_as_an_attachment(recorded):
    client = Client()
    response = client.get(f"/api/runs/{recorded.pk}/summary.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{recorded.pk}-summary.json"'
    assert json.loads(response.content) == client.get(f"/api/runs/{recorded.pk}/").json()


@pytest.mark.parametrize("suffix", ["events.ndjson", "events.csv", "summary.json"])
def test_exports_of_an_unknown_run_are_404(suffix):
    response = Client().get(f"/api/runs/987654/{suffix}")
    assert response.status_code == 404
    assert "run" in response.json()["errors"]


def test_an_empty_run_exports_no_events_and_a_csv_header():
    run = make_run()
    client = Client()
    assert body(client.get(f"/api/runs/{run.pk}/events.ndjson")) == ""
    assert body(client.get(f"/api/runs/{run.pk}/events.csv")).splitlines() == [",".join(export.FIELDS)]
