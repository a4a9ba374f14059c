"""Run actions through the API: offered only for what they apply to now, answered with what happened.

For every async workflow with actions, on its embedded broker: ``GET …/actions/`` lists
the live targets only (never the producer), a target that is not one of them is a 400
naming those that are, a valid one is a 202 whose ``result`` says what the run did (and the
run records it), and ``cancel`` is run-level: its answer echoes no target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from flows.runner import wait_until_finished

from .mqtt_support import use_embedded_mosquitto
from .polling import poll, wait_for_events

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Case:
    slug: str
    protocol: str
    params: dict[str, Any]
    action: str
    noun: str
    live: set[str]  # the targets GET lists once the run is up
    stranger: str  # an actor of the run the action does not apply to
    victim: str
    said: str  # in the 202's result
    recorded: str  # the event kind the run records for it (actor: the victim)
    after: dict[str, set[str]] = field(default_factory=dict)  # action → targets once it happened


def mqtt_sub(name: str) -> dict[str, Any]:
    return {"name": name, "filter": "t", "qos": 1, "clean_session": False, "late": False}


CASES = [
    Case("amqp-redelivery", "amqp",
         {"messages": 400, "rate": 5, "consumers": 2, "crash_at": 0, "work_ms": 20, "restart_ms": 300},
         "crash", "consumer", {"consumer:work/1", "consumer:work/2"}, "producer", "consumer:work/2",
         "consumer:work/2 will crash after its next message", "crash"),
    Case("celery-order", "amqp",
         {"orders": 200, "rate": 5, "work_ms": 100, "workers": 2, "crash_at": 0},
         "crash", "worker", {"worker:w1", "worker:w2"}, "client", "worker:w2",
         "worker:w2 killed", "crash", after={"crash": {"worker:w1"}}),
    Case("kafka-consumer-groups", "kafka",
         {"groups": 2, "members": 2, "partitions": 4, "messages": 400, "rate": 5, "process_ms": 0,
          "commit_mode": "after", "strategy": "range", "crash_at": 0},
         "crash", "member",
         {"group:billing/member-1", "group:billing/member-2", "group:shipping/member-1", "group:shipping/member-2"},
         "producer", "group:shipping/member-2", "group:shipping/member-2 will crash at its next message", "crash"),
    Case("mqtt-qos", "mqtt",
         {"messages": 400, "rate": 5, "qos": 1, "topics": ["t"], "subscribers": [mqtt_sub("s1"), mqtt_sub("s2")],
          "retain": False, "disconnect": "", "disconnect_at": 0, "away_messages": 0, "lose_ack": False},
         "disconnect", "subscriber", {"subscriber:s1", "subscriber:s2"}, "publisher", "subscriber:s1",
         "subscriber:s1 disconnected", "revoke",
         after={"disconnect": {"subscriber:s2"}, "reconnect": {"subscriber:s1"}}),
]


def post(client: Client, path: str, body: dict[str, Any]):
    return client.post(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def embedded(broker_mode, monkeypatch):  # conftest fixtures
    def use(protocol: str) -> None:
        if protocol == "mqtt":
            use_embedded_mosquitto(broker_mode, monkeypatch)
        else:
            broker_mode(protocol, "embedded")
    return use


@pytest.mark.parametrize("case", CASES, ids=[c.slug for c in CASES])
def test_actions_apply_to_live_targets_and_say_what_happened(case: Case, embedded) -> None:
    embedded(case.protocol)
    client = Client()
    started = post(client, "/api/runs/", {"workflow": case.slug, "params": case.params})
    assert started.status_code == 201, started.json()
    run_id = started.json()["id"]
    actions_url = f"/api/runs/{run_id}/actions/"

    def menu() -> dict[str, Any]:
        response = client.get(actions_url)
        assert response.status_code == 200, response.json()
        return response.json()["actions"]

    try:
        listed = poll(lambda: (m := menu()) and set(m[case.action]["targets"]) == case.live and m, 60,
                      f"{case.slug} to list {sorted(case.live)}")
        offered = listed[case.action]
        assert offered["target"] == case.noun and case.stranger not in offered["targets"]
        assert listed["cancel"] == {"label": "Cancel run", "target": None, "picks": False, "hands_on": False,
                                 "params": {}, "targets": []}

        refused = post(client, actions_url, {"action": case.action, "target": case.stranger})
        assert refused.status_code == 400
        assert refused.json()["errors"]["target"] == (
            f"no live {case.noun} named {case.stranger}; live: {', '.join(offered['targets'])}")

        wait_for_events(run_id, lambda ev: any(e["kind"] == "deliver" for e in ev), 60, "a first delivery")
        done = post(client, actions_url, {"action": case.action, "target": case.victim})
        assert done.status_code == 202
        answer = done.json()
        assert answer["accepted"] is True and answer["action"] == case.action and answer["target"] == case.victim
        assert case.said in answer["result"], answer
        wait_for_events(run_id, lambda ev: any(e["kind"] == case.recorded and e["actor"] == case.victim for e in ev),
                        60, f"the {case.recorded} of {case.victim}")
        for name, targets in case.after.items():
            assert set(menu()[name]["targets"]) == targets

        cancelled = post(client, actions_url, {"action": "cancel", "target": case.victim})
        assert cancelled.status_code == 202
        assert cancelled.json() == {"accepted": True, "action": "cancel", "target": "", "result": "run cancelled"}
    finally:
        post(client, actions_url, {"action": "cancel"})
        run = wait_until_finished(run_id, 60)
    assert run.state == "cancelled"
    assert client.get(actions_url).status_code == 409


@contextmanager
def live_run(client: Client, slug: str, action: str) -> Iterator[str]:
    """A run of ``slug`` (its case's parameters) once ``action`` has targets; yields its actions URL."""
    (case,) = [c for c in CASES if c.slug == slug]
    run_id = post(client, "/api/runs/", {"workflow": slug, "params": case.params}).json()["id"]
    actions_url = f"/api/runs/{run_id}/actions/"
    try:
        poll(lambda: client.get(actions_url).json()["actions"][action]["targets"], 60, f"targets of {action}")
        yield actions_url
    finally:
        post(client, actions_url, {"action": "cancel"})
        wait_until_finished(run_id, 60)


def test_an_action_that_needs_a_target_refuses_none(embedded) -> None:
    """MQTT's subscriber actions never pick a subscriber themselves."""
    embedded("mqtt")
    client = Client()
    with live_run(client, "mqtt-qos", "disconnect") as actions_url:
        refused = post(client, actions_url, {"action": "disconnect", "target": ""})
        assert refused.status_code == 400
        assert refused.json()["errors"]["target"].startswith("name the subscriber to disconnect; live: subscriber:s")

def test_a_workflow_without_actions_offers_cancel_only() -> None:
    client = Client()
    slow = {"persons": 50, "repeat": 20, "delay_ms": 0, "rate": 5}
    run_id = post(client, "/api/runs/", {"workflow": "http-crud", "params": slow}).json()["id"]
    actions_url = f"/api/runs/{run_id}/actions/"
    try:
        assert client.get(actions_url).json() == {
            "actions": {"cancel": {"label": "Cancel run", "target": None, "picks": False, "hands_on": False,
                                   "params": {}, "targets": []}}}
    finally:
        answer = post(client, actions_url, {"action": "cancel", "target": "client"})
        assert answer.status_code == 202 and answer.json()["result"] == "run cancelled"
        assert answer.json()["target"] == ""
        wait_until_finished(run_id, 60)
    assert client.get(actions_url).status_code == 409
    assert client.get("/api/runs/999999/actions/").status_code == 404


def test_an_action_the_run_has_not_handled_in_time_is_answered_as_queued(embedded, monkeypatch) -> None:
    """The answer never waits on the run thread for long: past the bound it says "queued"."""
    import threading

    from flows import views
    from flows.workflows import amqp_redelivery

    embedded("amqp")
    release = threading.Event()
    arm = amqp_redelivery.CrashPlan.arm

    def slow_arm(plan: Any, target: str) -> None:
        release.wait(10)  # the run thread is busy elsewhere for a while
        arm(plan, target)

    monkeypatch.setattr(amqp_redelivery.CrashPlan, "arm", slow_arm)
    monkeypatch.setattr(views, "ACTION_ANSWER_S", 0.3)
    client = Client()
    try:
        with live_run(client, "amqp-redelivery", "crash") as actions_url:
            answer = post(client, actions_url, {"action": "crash", "target": "consumer:work/1"})
            assert answer.status_code == 202
            assert answer.json()["result"] == "queued: the run has not handled crash yet; it will at its next step"
            release.set()
    finally:
        release.set()
