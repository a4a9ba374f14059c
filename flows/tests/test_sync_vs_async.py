"""``sync-vs-async`` on its brokerless lanes (HTTP, gRPC), its params, and its report."""

from __future__ import annotations

import json
import queue
import threading
import time

import pytest
from django.test import Client

from flows import eventstore, registry
from flows.compare.lane import LANES, PROTOCOLS, HandlingCrashed, Lane
from flows.compare.lanes.grpc import GrpcLane
from flows.compare.lanes.http import HttpLane
from flows.compare.outage import outage_delay_s
from flows.compare.verdict import verdict
from flows.models import Run
from flows.runner import get_runner, wait_until_finished

from .sync_vs_async_support import SLUG, SyncVsAsyncContract

pytestmark = pytest.mark.django_db(transaction=True)


class TestSyncLanes(SyncVsAsyncContract):
    protocols = ("http", "grpc")


class QueueLane(Lane):
    """An async lane on an in-process queue: the workflow's async side (sampler, settle, the
    outage's backlog) tested here without a broker; the real ones are the lane helpers' tests."""

    protocol = "amqp"
    sync = False
    backlog_source = "orders in the in-process queue, unacked included"
    backlog_actor = "queue:amqp.orders"

    def setup(self):
        self.waiting: queue.Queue[str] = queue.Queue()
        self.unacked = 0
        self.consumer: threading.Thread | None = None
        self.running = threading.Event()

    def start_downstream(self):
        self.running.set()
        self.consumer = threading.Thread(target=self._consume, daemon=True)
        self.consumer.start()

    def stop_downstream(self):
        self.running.clear()
        if self.consumer is not None:
            self.consumer.join(5)

    def _consume(self):
        while self.running.is_set():
            try:
                order = self.waiting.get(timeout=0.02)
            except queue.Empty:
                continue
            self.unacked += 1
            try:
                self.fulfil(order, "consumer:amqp", "redelivered")
            except HandlingCrashed:
                self.waiting.put(order)
            finally:
                self.unacked -= 1

    def hand_over(self, order):
        self.waiting.put(order)
        return {"queue": "amqp.orders"}

    def backlog(self):
        return self.waiting.qsize() + self.unacked

    def broker_counts(self):
        return {"depth": self.waiting.qsize()}

    def teardown(self):
        self.stop_downstream()


class TestWithAnInProcessQueueLane(SyncVsAsyncContract):
    protocols = ("http", "amqp")

    @pytest.fixture(autouse=True)
    def queue_lane(self, monkeypatch):
        monkeypatch.setitem(LANES, "amqp", f"{__name__}:QueueLane")


def test_grpc_slow_calls_end_with_deadline_exceeded_while_http_waits():
    from .sync_vs_async_support import lane_events, run_compare

    finished = run_compare(("http", "grpc"), downstream="slow", orders=4, work_ms=60)
    http, grpc = finished.result["protocols"]["http"], finished.result["protocols"]["grpc"]
    assert http["errors"] == 0 and http["perceived"]["p50"] >= 300
    assert grpc["errors"] == 4
    assert all("deadline exceeded" in e["attrs"]["reason"] for e in lane_events(finished, "grpc", "error"))
    # The server finished the work the callers gave up on.
    assert grpc["completed"] == 4


# -- failures on the lanes' threads ---------------------------------------------------------------

TORN_DOWN: list[str] = []


class BrokenCallerLane(HttpLane):
    def call(self, order):
        raise RuntimeError("the caller's client broke")

    def teardown(self):
        super().teardown()
        TORN_DOWN.append("http")
        raise RuntimeError("the teardown broke too")


class CountedGrpcLane(GrpcLane):
    def teardown(self):
        super().teardown()
        TORN_DOWN.append("grpc")


def test_a_broken_caller_fails_the_run_at_once_and_every_lane_is_torn_down(monkeypatch):
    monkeypatch.setitem(LANES, "http", f"{__name__}:BrokenCallerLane")
    monkeypatch.setitem(LANES, "grpc", f"{__name__}:CountedGrpcLane")
    TORN_DOWN.clear()
    params, errors = registry.get(SLUG).validate({"protocols": "http,grpc", "orders": 50, "rate": 5})
    assert not errors
    started = time.monotonic()
    run = wait_until_finished(get_runner().start(SLUG, params).pk, 30)
    assert run.state == "failed"
    # The caller's own failure, not the teardown's that followed it; and not a 10 s wait for the orders.
    assert "the http caller failed: the caller's client broke" in run.error
    assert time.monotonic() - started < 5
    assert TORN_DOWN == ["http", "grpc"]
    reasons = [e["attrs"]["reason"] for e in eventstore.read_events(run.pk, 0, 10_000) if e["kind"] == "error"]
    assert "the http lane's teardown failed: the teardown broke too" in reasons


def test_a_lane_missing_from_the_build_fails_the_run_saying_which(monkeypatch):
    monkeypatch.setitem(LANES, "mqtt", "flows.compare.lanes.not_built:MqttLane")
    params, errors = registry.get(SLUG).validate({"protocols": "http,mqtt", "orders": 2})
    assert not errors
    run = wait_until_finished(get_runner().start(SLUG, params).pk, 30)
    assert run.state == "failed"
    assert "the mqtt lane is not part of this build" in run.error


# -- params -------------------------------------------------------------------------------------

def post_run(params):
    return Client().post("/api/runs/", data=json.dumps({"workflow": SLUG, "params": params}),
                         content_type="application/json")


@pytest.mark.parametrize("params, field, fragment", [
    ({"protocols": ["http", "smtp"]}, "protocols", "unknown protocol 'smtp'; choose from http, grpc, celery"),
    ({"protocols": []}, "protocols", "choose at least one"),
    ({"protocols": ""}, "protocols", "choose at least one"),
    ({"protocols": 7}, "protocols", "must be a list"),
    ({"downstream": "down", "outage_ms": 0}, "outage_ms", "more than 0 when downstream is down"),
    ({"outage_ms": 60001}, "outage_ms", "at most 60000"),
    ({"downstream": "sideways"}, "downstream", "one of up, slow, down, flaky"),
    ({"flaky_rate": 1.5}, "flaky_rate", "at most 1"),
    ({"orders": 0}, "orders", "at least 1"),
])
def test_bad_params_are_400_naming_the_field(params, field, fragment):
    response = post_run(params)
    assert response.status_code == 400, response.content
    assert fragment in response.json()["errors"][field]
    assert Run.objects.count() == 0


def test_protocols_default_to_all_six_and_take_comma_separated_text():
    cls = registry.get(SLUG)
    cleaned, errors = cls.validate({})
    assert errors == {} and cleaned["protocols"] == list(PROTOCOLS)
    assert cls().expected(cleaned) == 20 * 6
    cleaned, errors = cls.validate({"protocols": "kafka, http"})
    assert errors == {} and cleaned["protocols"] == ["http", "kafka"]
    assert cls.contract()["params"]["protocols"]["choices"] == list(PROTOCOLS)
    # An outage of 0 is fine while nothing goes down.
    assert cls.validate({"outage_ms": 0})[1] == {}


def test_the_outage_starts_when_a_quarter_of_the_orders_are_due():
    assert outage_delay_s(20, 5.0) == 1.0
    assert outage_delay_s(20, 0.0) == 0.0


# -- the report ---------------------------------------------------------------------------------

def figures(**changes):
    base = {"perceived": {"p50": 104.2, "p95": 110.0, "p99": 111.0, "max": 112.0},
            "end_to_end": {"p50": 104.2, "p95": 110.0, "p99": 111.0, "max": 112.0},
            "placed": 20, "accepted": 20, "completed": 20, "errors": 0, "error_reasons": {}, "retries": 0, "lost": 0,
            "duplicates": 0, "backlog_max": 0}
    return {**base, **changes}


def test_verdict_of_a_sync_lane_through_an_outage():
    said = verdict("http", figures(perceived={"p50": 0.7}, errors=14, error_reasons={"connection refused": 13,
                                                                                       "connection dropped": 1},
                                   accepted=6, completed=7), sync=True, orders=20, outage=True)
    assert said == ("HTTP: callers waited 104 ms for the whole work; 14 calls failed during the outage "
                    "(connection refused; connection dropped); 6 of 20 answered; the server finished 1 its callers "
                    "had given up on")


def test_verdict_of_a_sync_lane_past_its_deadline():
    said = verdict("grpc", figures(perceived={"p50": 351.0}, end_to_end={"p50": None}, errors=20, accepted=0,
                                   error_reasons={"deadline exceeded after 350 ms": 20}), sync=True, orders=20,
                   outage=False)
    assert said == ("gRPC: no call was answered; callers waited 351 ms; 20 calls failed (deadline exceeded after "
                    "350 ms); 0 of 20 answered; the server finished 20 its callers had given up on")


def test_verdict_of_a_sync_lane_with_crashes():
    said = verdict("grpc", figures(errors=2, retries=2, error_reasons={"INTERNAL: handler crashed": 2}), sync=True,
                   orders=20, outage=False)
    assert said == ("gRPC: callers waited 104 ms for the whole work; 2 calls failed (INTERNAL: handler crashed); "
                    "2 retries after the handler crashed; all 20 answered")


def test_verdict_of_an_async_lane_through_an_outage():
    said = verdict("kafka", figures(perceived={"p50": 3.4}, backlog_max=22, end_to_end={"p50": 900.0}), sync=False,
                   orders=20, outage=True, drained_ms=1400)
    assert said == ("Kafka: callers waited 3 ms; 0 lost; backlog peaked at 22, drained 1.4 s after recovery; "
                    "all 20 completed; end to end 900 ms")


def test_verdict_of_an_async_lane_with_duplicates():
    said = verdict("amqp", figures(perceived={"p50": 2.0}, duplicates=1), sync=False, orders=20, outage=False)
    assert "1 duplicate delivered" in said and said.startswith("AMQP: callers waited 2 ms; 0 lost")


def test_a_run_names_the_brokers_of_its_lanes_and_only_those():
    from importlib.util import find_spec

    from flows.workflows.sync_vs_async import BROKER_OF, SyncVsAsync, lane_class

    assert SyncVsAsync.brokers_of({"protocols": ["http", "grpc"]}) == []
    assert SyncVsAsync.brokers_of({"protocols": ["http", "celery", "kafka", "amqp"]}) == ["amqp", "kafka"]
    # The table agrees with the lanes built so far (a lane's class says which transport it needs).
    for protocol, path in LANES.items():
        if find_spec(path.partition(":")[0]) is not None:
            assert lane_class(protocol).broker == BROKER_OF[protocol], protocol


def test_the_run_history_shows_the_protocols_as_a_list():
    from dashboard.params_display import run_param_views

    declared = registry.get(SLUG).contract()["params"]
    views = {v.name: v for v in run_param_views(SLUG, {"protocols": ["http", "grpc"], "orders": 20}, declared)}
    assert views["protocols"].text == "http, grpc" and not views["protocols"].is_default
    everything = {v.name: v for v in run_param_views(SLUG, {"protocols": list(PROTOCOLS)}, declared)}
    assert everything["protocols"].is_default
