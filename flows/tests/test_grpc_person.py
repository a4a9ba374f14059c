"""``grpc-person`` over real grpcio: codes and latencies as the client saw them, deadlines, NOT_FOUND, cancel."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from flows import eventstore, registry
from flows.context import RunContext
from flows.grpc_gen import person_pb2, person_pb2_grpc
from flows.recorder import Recorder, as_dict
from flows.runner import get_runner, wait_until_finished
from flows.services.person_grpc import MESSAGE_ID_KEY, PersonGrpcService, open_channel
from flows.workflows.grpc_person import GrpcPerson, proto_text

from .polling import wait_for_events

pytestmark = pytest.mark.django_db(transaction=True)

# A deadline no healthy call reaches, unless a test is about deadlines.
FAST = {"rate": 0, "delay_ms": 0, "concurrency": 2, "deadline_ms": 10_000}
# Far apart, so a loaded test machine cannot blur which side of the deadline a call falls.
DEADLINE_MS, SLOW_MS = 150, 500


def params(**given):
    cleaned, errors = registry.get("grpc-person").validate({**FAST, **given})
    assert not errors, errors
    return cleaned


def run_flow(**given):
    run = wait_until_finished(get_runner().start("grpc-person", params(**given)).pk, 60)
    assert run.state == "succeeded", run.error
    return run, get_runner().summary(run.pk), eventstore.read_events(run.pk, 0, 100_000)


def by_message(events, kind):
    return {e["message_id"]: e for e in events if e["kind"] == kind}


# -- what the client observed, observed independently ----------------------------------------


class Observer(grpc.UnaryUnaryClientInterceptor):
    """Sees every call on the channel from inside the client stack: its code and its duration."""

    def __init__(self) -> None:
        self.calls: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()

    def intercept_unary_unary(self, continuation, client_call_details, request):
        message_id = dict(client_call_details.metadata or ())[MESSAGE_ID_KEY]
        started = time.perf_counter()
        outcome = continuation(client_call_details, request)  # blocking calls return once complete
        waited_ms = (time.perf_counter() - started) * 1000
        with self.lock:
            self.calls[message_id] = (outcome.code().name, waited_ms)
        return outcome


class ObservedGrpcPerson(GrpcPerson):
    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def open_channel(self, target):
        return grpc.intercept_channel(super().open_channel(target), self.observer)


class KeepAll:
    def wake(self, recorder) -> None:
        pass


def test_recorded_codes_and_latencies_are_what_the_client_observed():
    observer = Observer()
    recorder = Recorder(0, KeepAll())
    p = params(calls=24, concurrency=3, delay_ms=15, deadline_ms=40, error_rate=0.5)
    result = ObservedGrpcPerson(observer).run(RunContext(0, p, recorder))
    events = [as_dict(e) for e in recorder.take()]

    responses = by_message(events, "response")
    assert len(responses) == len(observer.calls) == p["calls"]
    for message_id, (code, observed_ms) in observer.calls.items():
        recorded = responses[message_id]["attrs"]
        assert recorded["code"] == code, message_id
        # The recorded wait encloses the interceptor's and adds only the client's own bookkeeping.
        assert observed_ms <= recorded["perceived_ms"] <= observed_ms + 50, (message_id, observed_ms, recorded)
        assert recorded["end_to_end_ms"] == recorded["perceived_ms"]
    assert sum(result["codes"].values()) == p["calls"]
    assert result["codes"] == {
        code: sum(1 for c, _ in observer.calls.values() if c == code) for code in {c for c, _ in observer.calls.values()}
    }


def test_each_call_is_request_deliver_process_response_with_server_agreeing():
    run, summary, events = run_flow(calls=10, concurrency=2, delay_ms=5, error_rate=0.5)
    requests = by_message(events, "request")
    assert summary["counts"]["published"] == len(requests) == run.expected
    assert summary["progress"] == {"done": run.expected, "expected": run.expected}
    for message_id in requests:
        kinds = [e["kind"] for e in events if e["message_id"] == message_id]
        response = by_message(events, "response")[message_id]
        process = by_message(events, "process")[message_id]
        expected = ["request", "deliver", "process", "response"]
        assert kinds == (expected if response["attrs"]["code"] == "OK" else [*expected, "error"]), message_id
        assert process["attrs"]["code"] == response["attrs"]["code"]
        assert process["attrs"]["method"] == response["attrs"]["method"] == requests[message_id]["attrs"]["method"]
        # Sync: the client waited at least as long as the server worked on the call.
        assert response["attrs"]["perceived_ms"] >= process["attrs"]["server_ms"]
        # ... and no longer than from its request event to its response event.
        assert response["attrs"]["perceived_ms"] <= response["t_ms"] - requests[message_id]["t_ms"] + 0.01
    waits = [e["attrs"]["perceived_ms"] for e in by_message(events, "response").values()]
    assert summary["latency_ms"]["perceived"]["max"] == max(waits)


def test_responses_decode_against_the_contract():
    _, summary, events = run_flow(calls=6, error_rate=0)
    assert summary["result"]["proto"] == proto_text()
    for e in by_message(events, "response").values():
        attrs = e["attrs"]
        types = {"GetPerson": person_pb2.PersonResponse, "CreatePerson": person_pb2.PersonResponse}
        wire = types[attrs["method"]].FromString(bytes.fromhex(attrs["response_hex"]))
        assert {"id": wire.id, "person": {"name": wire.person.name, "age": wire.person.age}} == attrs["response"]
    for e in by_message(events, "request").values():
        request_type = getattr(person_pb2, f"{e['attrs']['method']}Request")
        assert request_type(**e["attrs"]["request"]).SerializeToString().hex() == e["attrs"]["request_hex"]


# -- deadlines ---------------------------------------------------------------------------------


def test_delay_over_deadline_is_deadline_exceeded_and_the_server_still_finishes():
    delay_ms, deadline_ms = SLOW_MS, DEADLINE_MS
    _, summary, events = run_flow(calls=4, concurrency=2, delay_ms=delay_ms, deadline_ms=deadline_ms, error_rate=0)
    responses = by_message(events, "response")
    assert {e["attrs"]["code"] for e in responses.values()} == {"DEADLINE_EXCEEDED"}
    assert summary["result"]["codes"] == {"DEADLINE_EXCEEDED": 4}
    errors = [e for e in events if e["kind"] == "error"]
    assert sorted(e["message_id"] for e in errors) == sorted(responses)
    assert {e["attrs"]["code"] for e in errors} == {"DEADLINE_EXCEEDED"}
    processed = by_message(events, "process")
    for message_id, response in responses.items():
        # The client gave up at its deadline, well before the server's delay was over ...
        assert deadline_ms <= response["attrs"]["perceived_ms"] < delay_ms
        # ... and the server, unaware, finished later and knew nobody was waiting any more.
        # (A call whose deadline passed before any handler took it never runs at all.)
        process = processed.get(message_id)
        if process is not None:
            assert process["seq"] > response["seq"]
            assert process["attrs"]["client_gone"] is True
            assert process["attrs"]["server_ms"] >= delay_ms
    assert processed, "no call reached the server"
    assert summary["result"]["late_server_finishes"] == len(processed)


def test_without_delay_the_same_deadline_is_met():
    _, summary, events = run_flow(calls=4, concurrency=2, delay_ms=0, deadline_ms=DEADLINE_MS, error_rate=0)
    responses = by_message(events, "response").values()
    assert {e["attrs"]["code"] for e in responses} == {"OK"}
    assert not [e for e in events if e["kind"] == "error"]
    assert summary["result"]["late_server_finishes"] == 0


# -- NOT_FOUND -----------------------------------------------------------------------------------


def test_error_rate_one_makes_every_get_not_found():
    _, summary, events = run_flow(calls=8, methods="both", error_rate=1.0)
    responses = list(by_message(events, "response").values())
    gets = [e for e in responses if e["attrs"]["method"] == "GetPerson"]
    creates = [e for e in responses if e["attrs"]["method"] == "CreatePerson"]
    assert gets and creates
    assert {e["attrs"]["code"] for e in gets} == {"NOT_FOUND"}
    assert {e["attrs"]["code"] for e in creates} == {"OK"}
    assert summary["counts"]["errors"] == len(gets)
    assert summary["result"]["by_method"]["GetPerson"] == {"NOT_FOUND": len(gets)}


def test_error_rate_is_the_share_of_gets_asking_for_unknown_ids():
    calls, rate = 10, 0.3
    _, summary, events = run_flow(calls=calls, methods="GetPerson", error_rate=rate)
    requests = by_message(events, "request")
    responses = by_message(events, "response")
    not_found = {m for m, e in responses.items() if e["attrs"]["code"] == "NOT_FOUND"}
    assert not_found == {m for m, e in requests.items() if e["attrs"]["unknown_id"]}
    assert len(not_found) == int(calls * rate)
    assert summary["counts"]["errors"] == len(not_found)


def test_error_rate_zero_finds_everyone():
    _, summary, _ = run_flow(calls=6, methods="GetPerson", error_rate=0)
    assert summary["result"]["codes"] == {"OK": 6}


# -- cancellation and the API ---------------------------------------------------------------------


def test_cancelling_stops_promptly_even_with_slow_calls_in_flight():
    run = get_runner().start("grpc-person", params(calls=50, concurrency=2, delay_ms=4000, deadline_ms=10000))
    wait_for_events(run.pk, lambda events: any(e["kind"] == "deliver" for e in events), 10,
                    "a call to reach the server")
    cancelled_at = time.monotonic()
    get_runner().act(run.pk, "cancel")
    finished = wait_until_finished(run.pk, 10)
    assert finished.state == "cancelled"
    # The server's delay is 4 s: anything well under it did not wait for it (room for a loaded machine).
    assert time.monotonic() - cancelled_at < 3.5, "cancel waited for the server's delay"


def test_the_service_is_plain_grpc():
    service = PersonGrpcService()
    service.start()
    try:
        with open_channel(service.target) as channel:
            stub = person_pb2_grpc.PersonServiceStub(channel)
            created = stub.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(name="Ada", age=36)), timeout=5)
            assert stub.GetPerson(person_pb2.GetPersonRequest(id=created.id), timeout=5).person.name == "Ada"
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetPerson(person_pb2.GetPersonRequest(id=created.id + 1000), timeout=5)
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        service.stop()

