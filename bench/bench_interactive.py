"""Interactive runs: from the publish request to the message reaching its consumer.

For each case an interactive run is started through the API (no scripted messages), then
``PUBLISHES`` messages are published one at a time with ``POST /api/runs/<id>/actions/``
(what the browser's publish bar sends on Enter). The figure is the time from just before
the POST to the recording of that message's first ``deliver`` event (its ``t_ms`` on the
run's own clock), median and p95. One case per (workflow, publish params, broker mode):
adding a protocol is one line in ``CASES``.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from .bench_amqp import _setup_django

PUBLISHES = 20
WARM_UP = 2
WAIT_S = 30.0


@dataclass(frozen=True)
class Case:
    slug: str
    publish: dict[str, Any]  # the publish action's params
    mode: str  # embedded | external
    run_params: dict[str, Any] = field(default_factory=dict)
    arrival: str = "deliver"  # the event kind that says the message reached its consumer


NOTHING_SCRIPTED = {"messages": 0}

CASES = [
    Case("amqp-routing", {"routing_key": "order.created.eu"}, "embedded", {**NOTHING_SCRIPTED, "work_ms": 0}),
    Case("amqp-routing", {"routing_key": "order.created.eu"}, "external", {**NOTHING_SCRIPTED, "work_ms": 0}),
    Case("amqp-redelivery", {}, "embedded", {**NOTHING_SCRIPTED, "work_ms": 0, "crash_at": 0}),
    Case("amqp-redelivery", {}, "external", {**NOTHING_SCRIPTED, "work_ms": 0, "crash_at": 0}),
    Case("celery-order", {}, "embedded", {"orders": 0, "work_ms": 0, "crash_at": 0}),
    Case("celery-order", {}, "external", {"orders": 0, "work_ms": 0, "crash_at": 0}),
    # No external Kafka on this machine: the embedded broker is Tansu, a real Kafka-protocol broker.
    Case("kafka-partitions", {"key": "order-1"}, "embedded", {**NOTHING_SCRIPTED, "partitions": 4}),
    Case("kafka-consumer-groups", {"key": "order-1"}, "embedded",
         {**NOTHING_SCRIPTED, "partitions": 4, "groups": 1, "members": 1, "process_ms": 0}),
    Case("mqtt-qos", {"topic": "home/kitchen/temp", "qos": 1}, "embedded", NOTHING_SCRIPTED),
    Case("mqtt-qos", {"topic": "home/kitchen/temp", "qos": 1}, "external", NOTHING_SCRIPTED),
]


def run(report: Any) -> None:
    _setup_django()
    for case in CASES:
        name = f"{case.slug} ({case.mode}) publish request → {case.arrival} recorded"
        try:
            latencies = measure(case)
        except RuntimeError as exc:  # one case that fails must not hide the others' figures
            report.add(name, None, "ms", ok=False, note=f"failed: {exc}")
            continue
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        report.add(name, statistics.median(latencies), "ms",
                   note=f"median of {len(latencies)} publishes; p95 {p95:.2f} ms; max {ordered[-1]:.2f} ms")


def measure(case: Case) -> list[float]:
    """Milliseconds from each publish POST to its arrival event, for ``PUBLISHES`` publishes."""
    from django.conf import settings
    from django.test import Client

    from flows import registry, transports
    from flows.pipeline import get_pipeline
    from flows.runner import get_runner

    protocol = registry.get(case.slug).broker
    setting, value = transports.setting_for(protocol, case.mode)
    setattr(settings, setting, value)
    transports.reset()
    broker = transports.get_broker(protocol)
    broker.start()  # embedded brokers (Tansu, Mosquitto) start on first use, as a run's ctx.broker() does
    broker.check(10.0)
    client = Client(HTTP_HOST="127.0.0.1")  # as the dashboard's own page would ask
    started = client.post("/api/runs/", content_type="application/json", data=json.dumps(
        {"workflow": case.slug, "params": {"interactive": True, **case.run_params}}))
    assert started.status_code == 201, started.json()
    run_id = started.json()["id"]
    try:
        recorder = _poll(lambda: getattr(get_pipeline().tracked(run_id), "recorder", None), "the run to be tracked")
        latencies = []
        for n in range(WARM_UP + PUBLISHES):
            before_ms = recorder.elapsed_ms()
            message_id = _publish(client, run_id, case.publish)["message_id"]
            arrived = _poll(lambda m=message_id: _first(run_id, case.arrival, m), f"{message_id} to arrive")
            if n >= WARM_UP:
                latencies.append(arrived["t_ms"] - before_ms)
        return latencies
    finally:
        client.post(f"/api/runs/{run_id}/actions/", content_type="application/json",
                    data=json.dumps({"action": "finish", "target": "", "params": {}}))
        get_runner().wait(run_id, 60.0)


def _publish(client: Any, run_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """POST the publish; while the run is still setting up it answers 400 and is asked again."""
    deadline = time.monotonic() + WAIT_S
    while True:
        response = client.post(f"/api/runs/{run_id}/actions/", content_type="application/json",
                               data=json.dumps({"action": "publish", "target": "", "params": params}))
        if response.status_code == 202:
            answer = response.json()
            if "message_id" not in answer:  # not handled within the view's wait: no id to follow
                raise RuntimeError(f"publish not handled in time: {answer['result']}")
            return answer
        if time.monotonic() > deadline:
            raise RuntimeError(f"publish refused: {response.json()}")
        time.sleep(0.05)  # the run is starting: ask again


def _first(run_id: int, kind: str, message_id: str) -> dict[str, Any] | None:
    """The message's first ``kind`` event once stored (its t_ms is when it was recorded)."""
    from flows import eventstore

    for event in eventstore.read_events(run_id, after=0, limit=100000):
        if event["kind"] == kind and event["message_id"] == message_id:
            return event
    return None


def _poll(probe: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (answer := probe()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {WAIT_S:g} s waiting for {what}")
        time.sleep(0.01)  # polling with a deadline; the figure comes from the event's own t_ms
    return answer
