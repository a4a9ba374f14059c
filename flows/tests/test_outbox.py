"""``outbox``: dual write loses or invents messages at a crash; the outbox loses none.

One contract, run per (database, broker): SQLite (the default run) with kombu's memory
transport and with embedded Tansu; PostgreSQL (``make test-external``, ``-m stack``) with
RabbitMQ and with an external Kafka-protocol broker. The orders and outbox rows are read
back from the database, the duplicates are real second records on the broker.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from flows.models import InboxEntry, OutboxRow, Run, ServiceOrder
from flows.outbox.outcomes import LOST, OK, PHANTOM, SUPPRESSED, outcome

from .amqp_support import BrokerModeClass, Finished, run_workflow
from .interactive_support import interactive_run

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = 6
CRASH_AT = 3
FAST = {"messages": ORDERS, "crash_at": CRASH_AT, "rate": 0, "restart_ms": 100}
CONTRACT = ("test_commit_then_publish_loses_the_crashed_order", "test_publish_then_commit_leaves_a_phantom",
            "test_the_outbox_with_the_same_crash_loses_nothing_and_the_inbox_removes_the_duplicate")


def stored(run: Finished) -> set[str]:
    return set(ServiceOrder.objects.filter(run_id=run.summary["id"]).values_list("order_id", flat=True))


class OutboxContract(BrokerModeClass):
    broker = ""  # amqp | kafka

    @pytest.fixture(autouse=True)
    def amqp_broker(self, broker_mode, request):  # replaces BrokerModeClass's: this class picks its broker
        url = None
        if self.mode == "external":
            url = request.getfixturevalue("rabbitmq_url") if self.broker == "amqp" else \
                request.getfixturevalue("tansu").bootstrap_servers
        return broker_mode(self.broker, self.mode, url)

    def run(self, **given: object) -> Finished:
        run = run_workflow("outbox", broker=self.broker, **{**FAST, **given})
        assert run.summary["brokers"] and list(run.summary["brokers"]) == [self.broker]
        assert run.result["database"] == connection.vendor
        # The log reads in causal order: a row is written (pending) before the relay publishes it.
        written = {e["message_id"]: e["seq"] for e in run.of("enqueue", "db:outbox")}
        for publish in run.of("publish", "relay"):
            assert written[publish["message_id"]] < publish["seq"], publish
        return run

    def test_commit_then_publish_loses_the_crashed_order(self) -> None:
        run = self.run(mode="dual-write", order="commit-then-publish")
        r, c = run.result, run.counts
        assert r["lost"] == c["lost"] == 1 and r["phantom"] == 0
        assert r["outcomes"]["order-3"] == LOST and stored(run) == {f"order-{n}" for n in range(1, ORDERS + 1)}
        (crash,) = run.of("crash")
        assert crash["actor"] == "service" and "before the publish" in crash["attrs"]["reason"]
        assert "m-3" not in {e["message_id"] for e in run.of("publish") + run.of("deliver")}
        assert c["effects"] == ORDERS - 1 and r["duplicates"] == 0
        assert not OutboxRow.objects.filter(run_id=run.summary["id"]).exists()

    def test_publish_then_commit_leaves_a_phantom(self) -> None:
        run = self.run(mode="dual-write", order="publish-then-commit")
        r = run.result
        assert r["phantom"] == 1 and r["lost"] == 0 and r["outcomes"]["order-3"] == PHANTOM
        assert "order-3" not in stored(run) and len(stored(run)) == ORDERS - 1
        # The consumer acted on a message whose order the service never stored.
        assert [e for e in run.of("process") if e["message_id"] == "m-3" and e["attrs"]["effect"]]
        (crash,) = run.of("crash")
        assert crash["seq"] > next(e["seq"] for e in run.of("publish") if e["message_id"] == "m-3")

    def test_the_outbox_with_the_same_crash_loses_nothing_and_the_inbox_removes_the_duplicate(self) -> None:
        run = self.run(mode="outbox")
        r, c, run_id = run.result, run.counts, run.summary["id"]
        assert r["lost"] == c["lost"] == 0 and r["phantom"] == 0
        assert c["effects"] == r["effects"] == ORDERS
        # The relay published m-3 twice (it crashed between publish and mark), the broker delivered both.
        (crash,) = run.of("crash")
        assert crash["actor"] == "relay" and crash["message_id"] == "m-3"
        again = [e for e in run.of("publish") if e["message_id"] == "m-3"]
        assert [e["attempt"] for e in again] == [1, 2] and again[1]["seq"] > crash["seq"]
        dups = [e for e in run.of("deliver") if e["duplicate"]]
        assert len(dups) >= 1 and c["duplicates"] == r["duplicates"] == len(dups)
        assert all(d["attrs"]["cause_seq"] == crash["seq"] for d in dups)
        suppressed = [e for e in run.of("process") if e["attrs"]["effect"] is False]
        assert {e["message_id"] for e in suppressed} == {d["message_id"] for d in dups}
        assert r["outcomes"]["order-3"] == SUPPRESSED and list(r["outcomes"].values()).count(OK) == ORDERS - 1
        assert InboxEntry.objects.filter(run_id=run_id).count() == ORDERS
        # Every row went pending → sent, in the database and in the events.
        assert set(OutboxRow.objects.filter(run_id=run_id).values_list("state", flat=True)) == {"sent"}
        assert OutboxRow.objects.get(run_id=run_id, message_id="m-3").publishes == 2
        pending = {e["message_id"] for e in run.of("enqueue", "db:outbox") if e["attrs"]["outbox_state"] == "pending"}
        sent = {e["message_id"] for e in run.of("commit", "db:outbox") if e["attrs"]["outbox_state"] == "sent"}
        assert pending == sent == {f"m-{n}" for n in range(1, ORDERS + 1)}
        if self.broker == "kafka":  # the broker's own count: one record per publish, the duplicate included
            assert r["broker_at_end"]["kafka"]["end_offsets"] == {"0": ORDERS + 1}


class TestOutboxSqliteMemory(OutboxContract):
    mode, broker = "embedded", "amqp"


class TestOutboxSqliteTansu(OutboxContract):
    mode, broker = "embedded", "kafka"


class TestOutboxRabbitMQ(OutboxContract):
    mode, broker = "external", "amqp"
    on_stack = CONTRACT  # PostgreSQL under make test-external


class TestOutboxKafkaExternal(OutboxContract):
    mode, broker = "external", "kafka"
    on_stack = CONTRACT


# -- without a broker ---------------------------------------------------------------------

@pytest.mark.parametrize("params, field", [
    ({"messages": 4, "crash_at": 5}, "crash_at"),
    ({"mode": "two-phase"}, "mode"),
    ({"order": "never"}, "order"),
    ({"broker": "mqtt"}, "broker"),
    ({"messages": -1}, "messages"),
])
def test_bad_params_are_400_naming_the_field(client, params, field) -> None:
    response = client.post("/api/runs/", json.dumps({"workflow": "outbox", "params": params}),
                           content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert list(response.json()["errors"]) == [field]
    assert Run.objects.count() == 0


def test_crash_at_may_equal_messages_and_zero_means_never() -> None:
    from flows import registry

    for given in ({"messages": 4, "crash_at": 4}, {"messages": 0, "crash_at": 0}):
        assert registry.get("outbox").validate(given)[1] == {}


@pytest.mark.parametrize("stored_, effects, suppressed, expected", [
    (True, 1, 0, OK), (True, 0, 0, LOST), (False, 1, 0, PHANTOM), (True, 1, 1, SUPPRESSED), (False, 0, 0, LOST),
])
def test_outcome_of_an_order(stored_, effects, suppressed, expected) -> None:
    assert outcome(stored_, effects, suppressed) == expected


def test_the_crash_button_is_refused_in_dual_write_naming_mode(broker_mode) -> None:
    broker_mode("amqp", "embedded")
    with interactive_run("outbox", **FAST, mode="dual-write") as run:
        refused = run.act("crash")
        assert refused.status_code == 400 and list(refused.json()["errors"]) == ["mode"]


def test_by_hand_the_crash_relay_button_makes_the_next_order_a_suppressed_duplicate(broker_mode) -> None:
    broker_mode("amqp", "embedded")
    with interactive_run("outbox", **{**FAST, "crash_at": 0}) as run:
        run.events(lambda events: sum(e["kind"] == "process" for e in events) >= ORDERS, 30, "the scripted orders")
        run.do("crash")
        placed = run.do("order")
        assert placed["message_id"] == f"m-{ORDERS + 1}"
        run.events(lambda events: any(e["kind"] == "process" and e["duplicate"] for e in events), 30,
                   "the duplicate of the order placed by hand")
        summary = run.finish()
    r = summary["result"]
    assert summary["state"] == "succeeded" and r["lost"] == 0
    assert r["outcomes"][f"order-{ORDERS + 1}"] == SUPPRESSED and r["effects"] == ORDERS + 1
    assert [c["who"] for c in r["crashes"]] == ["relay"]
    assert summary["progress"] == {"done": ORDERS, "expected": ORDERS}  # the hand-placed order is outside the plan


def test_retention_deletes_a_runs_orders_and_outbox_rows(broker_mode) -> None:
    from flows.retention import delete_runs

    broker_mode("amqp", "embedded")
    run = run_workflow("outbox", broker="amqp", **FAST, mode="outbox")
    run_id = run.summary["id"]
    assert ServiceOrder.objects.filter(run_id=run_id).count() == OutboxRow.objects.filter(run_id=run_id).count() == ORDERS
    delete_runs([run_id])
    assert not ServiceOrder.objects.filter(run_id=run_id).exists() and not OutboxRow.objects.filter(run_id=run_id).exists()
