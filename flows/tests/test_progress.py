"""Progress never overshoots: ``progress.done`` counts the completions of the run's plan.

``expected`` is how many completions a workflow plans (responses for sync workflows, first
processings per (logical consumer, message) for async ones) and ``done`` counts those of
them that happened, so ``done <= expected`` always holds and a clean run reaches it exactly.
Every workflow's default run, on embedded brokers (RabbitMQ for one that needs it).
"""

from __future__ import annotations

import pytest

from flows import eventstore, registry

from .mqtt_support import require_mosquitto_binary

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def embedded_brokers(broker_mode, monkeypatch):  # conftest fixtures
    monkeypatch.delenv("MOSQUITTO_BIN", raising=False)
    require_mosquitto_binary()
    for protocol in ("amqp", "kafka", "mqtt"):
        broker_mode(protocol, "embedded")


def finish(slug: str, **given) -> dict:
    from flows.runner import get_runner, wait_until_finished

    params, errors = registry.get(slug).validate(given)
    assert not errors, errors
    run = wait_until_finished(get_runner().start(slug, params).pk, 120)
    summary = get_runner().summary(run.pk)
    assert summary["progress"]["expected"] == summary["expected"] == run.expected > 0
    return summary


@pytest.mark.parametrize("slug", sorted(registry.WORKFLOWS))
def test_every_default_run_reaches_its_expected_exactly(slug, embedded_brokers, broker_mode, request):
    if registry.get(slug).needs_external:  # the embedded broker cannot run it (amqp-dead-letter): RabbitMQ
        broker_mode("amqp", "external", request.getfixturevalue("rabbitmq_url"))
    summary = finish(slug)
    progress = summary["progress"]
    assert progress["done"] <= progress["expected"], progress
    # The defaults are clean runs: the faults they show (a crash, a lost QoS 0 message, NOT_FOUND)
    # are part of the plan, so every planned completion happens.
    assert summary["state"] == "succeeded", summary["error"]
    assert not (summary["result"] or {}).get("differences"), summary["result"]["differences"]
    assert progress["done"] == progress["expected"], progress
    assert progress["done"] == summary["planned"]["response" if registry.get(slug).pattern == "sync" else "process"]


def test_retried_reads_are_completions_beyond_the_plan(embedded_brokers):
    """With the server failing most requests, reads are retried: more responses than planned."""
    summary = finish("http-crud", persons=3, repeat=3, delay_ms=0, rate=0, error_rate=0.7)
    assert summary["state"] == "succeeded", summary["error"]
    progress, completed = summary["progress"], summary["completed"]
    assert progress["done"] <= progress["expected"], progress
    assert completed["response"] == summary["counts"]["published"]  # every call answered, retries included
    beyond = completed["response"] - progress["done"]
    events = eventstore.read_events(summary["id"], 0, 10_000)
    assert beyond > 0 and beyond == sum(1 for e in events if e["kind"] == "response" and e["attrs"].get("planned") is False)


def test_a_broker_departing_from_the_spec_is_no_progress(broker_mode, monkeypatch):
    """amqtt sends retained copies on every CONNECT, even to filters that do not match: unplanned."""
    from .mqtt_support import use_embedded_amqtt

    use_embedded_amqtt(broker_mode, monkeypatch)
    summary = finish("mqtt-qos", rate=0)
    progress, completed = summary["progress"], summary["completed"]
    assert summary["result"]["differences"]
    assert progress["done"] <= progress["expected"] < completed["process"], (progress, completed)


def test_a_copy_outside_the_routing_plan_is_processed_but_no_progress(embedded_brokers, monkeypatch):
    """As if the broker routed a copy the spec did not: the plan is made to leave one copy out."""
    from flows.workflows.amqp_routing import AmqpRouting

    setup = AmqpRouting.setup

    def setup_without_one_copy(self) -> None:
        setup(self)
        self.planned_copies.discard(sorted(self.planned_copies)[0])

    monkeypatch.setattr(AmqpRouting, "setup", setup_without_one_copy)
    summary = finish("amqp-routing", rate=0, work_ms=0)
    progress, completed = summary["progress"], summary["completed"]
    assert completed["process"] == progress["expected"]  # every copy was processed once...
    assert progress["done"] == progress["expected"] - 1  # ...one of them outside the plan
