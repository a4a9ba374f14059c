"""The runner: every run ends in a final state with its events kept and a clear error."""

from __future__ import annotations

import socket
import sys
import time
import types

import pytest

from flows import registry
from flows.models import Run
from flows.registry import Workflow
from flows.runner import Runner, get_runner, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)


class Exploding(Workflow):
    slug = "test-exploding"
    title = "explodes"
    pattern = "async"
    protocol = "amqp"
    lesson = "test"

    def run(self, ctx):
        ctx.emit("publish", "producer", "m1")
        raise ValueError("boom")


class NeedsRabbit(Workflow):
    slug = "test-needs-rabbit"
    title = "needs a broker"
    pattern = "async"
    protocol = "amqp"
    lesson = "test"
    broker = "amqp"

    def run(self, ctx):
        ctx.broker("amqp")
        ctx.emit("publish", "producer", "m1")


@pytest.fixture
def test_workflows(monkeypatch):
    module = types.ModuleType("flows_test_workflows")
    module.Exploding, module.NeedsRabbit = Exploding, NeedsRabbit
    monkeypatch.setitem(sys.modules, "flows_test_workflows", module)
    monkeypatch.setitem(registry.WORKFLOWS, Exploding.slug, "flows_test_workflows:Exploding")
    monkeypatch.setitem(registry.WORKFLOWS, NeedsRabbit.slug, "flows_test_workflows:NeedsRabbit")
    registry.get.cache_clear()
    yield
    registry.get.cache_clear()


def test_a_workflow_exception_fails_the_run_and_keeps_its_events(test_workflows):
    run = wait_until_finished(get_runner().start(Exploding.slug, {}).pk, 20)
    assert run.state == "failed" and run.error == "ValueError: boom"
    events = list(run.events.order_by("seq").values_list("kind", "attrs"))
    assert [k for k, _ in events] == ["publish", "error", "done"]
    assert events[1][1]["reason"] == "ValueError: boom"
    assert run.summary["counts"]["published"] == 1 and run.summary["state"] == "failed"


def test_a_broker_that_is_down_fails_the_run_within_seconds(test_workflows, broker_mode):
    broker_mode("amqp", "external", "amqp://guest:guest@127.0.0.1:1//")
    started = time.monotonic()
    run = wait_until_finished(get_runner().start(NeedsRabbit.slug, {}).pk, 20)
    assert time.monotonic() - started < 10
    assert run.state == "failed"
    assert "RabbitMQ" in run.error and "127.0.0.1:1" in run.error and "not reachable" in run.error
    assert run.brokers["amqp"]["mode"] == "external"


def test_runs_orphaned_by_a_dead_server_are_failed():
    dead = Run.objects.create(workflow="http-crud", state="running", owner=f"{socket.gethostname()}:999999999")
    elsewhere = Run.objects.create(workflow="http-crud", state="running", owner="another-host:1")
    Runner()._reap_orphans()
    dead.refresh_from_db()
    elsewhere.refresh_from_db()
    assert dead.state == "failed" and "server stopped" in dead.error
    assert elsewhere.state == "running", "runs of other hosts are not ours to judge"
