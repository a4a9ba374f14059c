"""A run leaves nothing on its broker, however it ends, and keeps the broker's numbers first.

* the registry (``flows.run_resources``): the runner releases what a workflow tracked on
  success, failure and cancellation, figures first, errors kept, never raising;
* Kafka: a cancelled run's topic is gone too, its end offsets kept;
* AMQP and Celery, on RabbitMQ and the embedded broker: after a run (finished or
  cancelled) a passive declare of each of its queues and exchanges answers 404.
"""

from __future__ import annotations

from typing import Any

import pytest

from flows import registry, run_resources
from flows.registry import Workflow
from flows.runner import get_runner, wait_until_finished

from .amqp_support import BrokerModeClass, run_workflow
from .kafka_support import kafka_mode, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class FakeResource:
    key = "fake"

    def __init__(self, fail_capture: bool = False) -> None:
        self.fail_capture = fail_capture
        self.calls: list[str] = []

    def capture(self, timeout: float) -> dict[str, Any]:
        self.calls.append("capture")
        if self.fail_capture:
            raise ConnectionError("broker went away")
        return {"end_offsets": {"0": 7}}

    def delete(self, timeout: float) -> None:
        self.calls.append("delete")


TRACKED: dict[str, FakeResource] = {}


class Tracks(Workflow):
    """Tracks a resource, then succeeds, fails, or waits to be cancelled, as ``how`` says."""

    slug = "test-tracks"
    title = "tracks a resource"
    pattern = "async"
    protocol = "kafka"
    lesson = "test"

    def run(self, ctx):
        how = ctx.params["how"]
        run_resources.track(ctx.run_id, TRACKED[how])
        if how == "fail":
            raise RuntimeError("boom")
        if how == "cancel":
            ctx.sleep(60)
        return {"done": True}


@pytest.fixture
def tracks_workflow(monkeypatch):
    monkeypatch.setitem(registry.WORKFLOWS, Tracks.slug, "flows.tests.test_run_resources:Tracks")
    registry.get.cache_clear()
    yield
    registry.get.cache_clear()


@pytest.mark.parametrize("how, state", [("succeed", "succeeded"), ("fail", "failed"), ("cancel", "cancelled")])
def test_the_runner_releases_what_a_run_tracked_however_it_ends(tracks_workflow, how: str, state: str) -> None:
    TRACKED[how] = resource = FakeResource()
    runner = get_runner()
    run = runner.start(Tracks.slug, {"how": how})
    if how == "cancel":
        wait_until(lambda: run_resources.tracked(run.pk), 30, "the run to track its resource")
        runner.act(run.pk, "cancel")
    finished = wait_until_finished(run.pk, 60)
    assert finished.state == state, finished.error
    assert resource.calls == ["capture", "delete"]  # the numbers first, then the deletion
    assert finished.result["broker_at_end"] == {"fake": {"end_offsets": {"0": 7}, "deleted": True}}
    assert finished.summary["result"]["broker_at_end"]["fake"]["deleted"] is True
    assert run_resources.tracked(run.pk) == []


def test_a_resource_that_cannot_be_read_is_still_deleted() -> None:
    resource = FakeResource(fail_capture=True)
    run_resources.track(-1, resource)
    figures = run_resources.release(-1)
    assert resource.calls == ["capture", "delete"]
    assert figures["fake"]["deleted"] is True and "broker went away" in figures["fake"]["capture_error"]


# -- Kafka: a cancelled run deletes its topic too ------------------------------------------------


def test_a_cancelled_kafka_run_deletes_its_topic(django_db_blocker, tansu) -> None:
    from flows.kafka.clients import admin_client

    with kafka_mode("embedded", None) as bootstrap:
        params, errors = registry.get("kafka-partitions").validate({"messages": 5000, "rate": 20, "partitions": 2})
        assert not errors
        runner = get_runner()
        run = runner.start("kafka-partitions", params)
        wait_until(lambda: runner.summary(run.pk)["counts"]["processed"] >= 3, 60, "the first messages")
        topic = f"flows.{run.namespace}.orders"
        assert topic in admin_client(bootstrap).list_topics(timeout=10).topics
        runner.act(run.pk, "cancel")
        finished = wait_until_finished(run.pk, 60)
        assert finished.state == "cancelled"
        at_end = finished.result["broker_at_end"]["kafka"]
        assert at_end["topic"] == topic and at_end["deleted"] is True
        assert sum(at_end["end_offsets"].values()) >= 3  # the broker's own count, read before deleting
        assert topic not in admin_client(bootstrap).list_topics(timeout=10).topics


def test_tansu_memory_stays_flat_over_repeated_kafka_runs(django_db_blocker, tansu) -> None:
    """The soak in miniature: 4 MB per run, and the broker's RSS does not follow (it would, ~5 MB a run)."""
    from .test_kafka_tansu_quirks import broker_pid, rss_mb

    pid = broker_pid(tansu)
    rss = []
    with kafka_mode("external", tansu.bootstrap_servers):
        for _ in range(8):
            run = run_workflow("kafka-partitions", messages=4000, message_bytes=1000, partitions=2, rate=0)
            assert run.result["broker_at_end"]["kafka"]["deleted"] is True
            rss.append(rss_mb(pid))
    # After two warm-up runs, six more runs (24 MB of records) leave the broker within a few MB.
    assert rss[-1] - rss[1] < 8, rss


# -- AMQP and Celery: every queue and exchange answers 404 afterwards -----------------------------


def assert_gone(broker: Any, queues: list[str], exchanges: list[str]) -> None:
    """A passive declare of each name fails with NOT_FOUND (404), on RabbitMQ and embedded alike."""
    conn = broker.connection()
    try:
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                channel = conn.channel()  # RabbitMQ closes a channel on a 404
                with pytest.raises(Exception) as caught:  # py-amqp's NotFound, kombu's ChannelError
                    if kind == "queue":
                        channel.queue_declare(queue=name, passive=True)
                    else:
                        channel.exchange_declare(exchange=name, type="direct", passive=True)
                text = f"{caught.value!r} {caught.value}"
                assert "404" in text or "NOT_FOUND" in text, (kind, name, text)
    finally:
        conn.release()


class AmqpResourcesContract(BrokerModeClass):
    def test_amqp_routing_leaves_no_queue_or_exchange(self, amqp_broker) -> None:
        run = run_workflow("amqp-routing", exchange_type="direct", messages=6, rate=0, work_ms=0,
                           consumers_by_queue={"audit": 0})
        r = run.result
        assert r["queue_counts"]["audit"]["broker_ready"] > 0  # read from the broker before deleting
        assert_gone(amqp_broker, list(r["queues"].values()), [r["exchange"]["broker_name"]])

    def test_a_cancelled_amqp_run_leaves_nothing(self, amqp_broker) -> None:
        params, errors = registry.get("amqp-redelivery").validate({"messages": 500, "rate": 20, "crash_at": 0})
        assert not errors
        runner = get_runner()
        run = runner.start("amqp-redelivery", params)
        wait_until(lambda: runner.summary(run.pk)["counts"]["published"] >= 3, 60, "the first messages")
        runner.act(run.pk, "cancel")
        finished = wait_until_finished(run.pk, 60)
        assert finished.state == "cancelled"
        assert_gone(amqp_broker, [f"{run.namespace}.work"], [f"{run.namespace}.tasks"])

    def test_celery_order_leaves_no_queue_or_exchange(self, amqp_broker) -> None:
        run = run_workflow("celery-order", orders=2, rate=0, work_ms=0, crash_at=0, timeout=120)
        queues = run.result["queues"]
        assert_gone(amqp_broker, [queues["orders"], queues["events"]], [queues["orders"]])


class TestAmqpResourcesEmbedded(AmqpResourcesContract):
    mode = "embedded"

    def test_the_embedded_broker_forgets_every_run(self, amqp_broker) -> None:
        from flows.amqp.memory import Channel, Transport

        run_workflow("amqp-routing", exchange_type="topic", messages=4, rate=0, work_ms=0)
        state = Transport.global_state
        leftovers = [name for name in (*state.exchanges, *Channel.queues) if name.startswith("run")]
        assert leftovers == [] and not any(q.startswith("run") for q in state.queue_index)


class TestAmqpResourcesExternal(AmqpResourcesContract):
    mode = "external"


def test_a_kafka_broker_that_is_gone_is_not_waited_for_step_by_step() -> None:
    """Nothing answers: the probe says so once, and the deletion is skipped rather than timed out again."""
    import socket

    from flows.kafka.teardown import RunTopic

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resource = RunTopic(f"127.0.0.1:{port}", "flows.run-1.orders", 2, ["flows.run-1.billing"])
    resource.created = True
    run_resources.track(-2, resource)
    figures = run_resources.release(-2)["kafka"]
    assert "did not answer" in figures["capture_error"]
    assert figures["deleted"] is False and "nothing deleted" in figures["delete_error"]
