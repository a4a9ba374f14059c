"""``http-crud`` over real HTTP: PUT is idempotent, POST is not, latency is what the client waited."""

from __future__ import annotations

import http.client
import json

import pytest

from flows import eventstore, registry
from flows.runner import get_runner, wait_until_finished
from flows.services.persons import PersonsService, state_hash
from flows.workflows.http_crud import put_verdict

pytestmark = pytest.mark.django_db(transaction=True)


def run_crud(**params):
    cleaned, errors = registry.get("http-crud").validate({"delay_ms": 0, "rate": 0, **params})
    assert not errors
    run = wait_until_finished(get_runner().start("http-crud", cleaned).pk, 60)
    assert run.state == "succeeded", run.error
    return run, get_runner().summary(run.pk), eventstore.read_events(run.pk, 0, 100_000)


def test_put_is_idempotent_and_post_is_not():
    repeat = 4
    run, summary, events = run_crud(persons=3, repeat=repeat)
    result = summary["result"]
    assert result["put"]["idempotent"] is True
    assert result["put"]["state_hash_after_one"] == result["put"]["state_hash_after_all"]
    assert result["post"]["persons_after"] - result["post"]["persons_before"] == repeat

    # The same story from the recorded server events: only the first PUT changed the state.
    puts = [e for e in events if e["kind"] == "process" and e["attrs"]["method"] == "PUT"]
    assert [e["attrs"]["effect"] for e in puts] == [True] + [False] * (repeat - 1)
    assert len({e["attrs"]["state_hash"] for e in puts}) == 1
    posts = [e for e in events if e["kind"] == "process" and e["attrs"]["method"] == "POST"]
    assert all(e["attrs"]["effect"] for e in posts)
    # The state table's readings are the server's own answers to GET /persons.
    listings = [e["attrs"]["body"] for e in events if e["kind"] == "response" and e["attrs"]["step"] == "inspect"]
    assert [len(x) for x in listings] == [3, 3, 3, 3 + repeat, 0]
    assert state_hash(listings[1]) == result["put"]["state_hash_after_one"]


def test_put_verdict_counts_failures_and_needs_two_successes():
    # The case: 2 of 3 PUTs failed, the state is the same: not "idempotent", cannot tell.
    assert put_verdict([503, 200, 503], "aaa", "aaa") == {
        "succeeded": 1, "failed": 2, "idempotent": None, "verdict": "cannot tell: 2 of 3 PUTs failed"}
    assert put_verdict([503, 503], None, "aaa")["idempotent"] is None
    assert put_verdict([200, 200, 200], "aaa", "aaa") == {
        "succeeded": 3, "failed": 0, "idempotent": True, "verdict": "the 3 PUTs left the same state: idempotent"}
    assert put_verdict([200, 503, 200], "aaa", "aaa")["verdict"] == (
        "1 of 3 PUTs failed; the 2 that succeeded left the same state: idempotent")
    different = put_verdict([200, 200], "aaa", "bbb")
    assert different["idempotent"] is False and different["verdict"].endswith("not idempotent")


def test_put_result_agrees_with_the_recorded_put_responses():
    # error_rate 0.3: whatever failed at random, the result counts it and judges only what succeeded.
    run, summary, events = run_crud(persons=2, repeat=3, error_rate=0.3)
    put = summary["result"]["put"]
    statuses = [e["attrs"]["status"] for e in events if e["kind"] == "response" and e["attrs"]["step"] == "repeat-put"]
    assert put["succeeded"] == statuses.count(200) and put["failed"] == len(statuses) - statuses.count(200)
    assert put["idempotent"] is (True if put["succeeded"] >= 2 else None)
    if put["failed"]:
        assert f"{put['failed']} of 3 PUTs failed" in put["verdict"]


def test_counts_and_latencies_match_the_requests():
    run, summary, events = run_crud(persons=2, repeat=2, delay_ms=20)
    requests = [e for e in events if e["kind"] == "request"]
    responses = [e for e in events if e["kind"] == "response"]
    assert summary["counts"]["published"] == len(requests) == len(responses) == run.expected
    assert summary["counts"]["processed"] == len(requests)
    assert summary["progress"] == {"done": run.expected, "expected": run.expected}
    # Sync IPC: the client waited at least the server's processing delay on every call.
    waits = [e["attrs"]["perceived_ms"] for e in responses]
    assert min(waits) >= 20
    assert summary["latency_ms"]["perceived"]["max"] == max(waits)
    # Each request is followed by the server receiving it, handling it, then the response.
    for request in requests:
        kinds = [e["kind"] for e in events if e["message_id"] == request["message_id"]]
        assert kinds == ["request", "deliver", "process", "response"]


def test_injected_errors_are_recorded_as_errors():
    run, summary, events = run_crud(persons=5, repeat=2, error_rate=0.5)
    failed = [e for e in events if e["kind"] == "response" and e["attrs"]["status"] == 503]
    assert failed, "with error_rate 0.5 some requests must fail"
    assert summary["counts"]["errors"] == len([e for e in events if e["kind"] == "error"]) == len(failed)
    # A failed request changed nothing on the server.
    for response in failed:
        process = next(e for e in events if e["kind"] == "process" and e["message_id"] == response["message_id"])
        assert process["attrs"]["effect"] is False


def test_persons_service_speaks_real_http():
    service = PersonsService()
    service.start()
    try:
        host, port = service.base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)

        def call(method, path, body=None):
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None

        assert call("POST", "/persons", {"name": "Ada", "age": 36}) == (201, {"id": 1, "name": "Ada", "age": 36})
        assert call("POST", "/persons", {"name": "", "age": 1})[0] == 400
        assert call("PUT", "/persons/1", {"name": "Ada L", "age": 36})[0] == 200
        assert call("GET", "/persons/1")[1]["name"] == "Ada L"
        assert call("DELETE", "/persons/1")[0] == 204
        assert call("DELETE", "/persons/1")[0] == 404
        assert call("GET", "/persons") == (200, [])
    finally:
        service.stop()
