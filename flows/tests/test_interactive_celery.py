"""An interactive ``celery-order`` run driven through the API: place orders by hand, add,
remove, kill and restart workers, on the embedded broker and on RabbitMQ (real ``celery
worker`` processes), as test_celery_order.py does.
"""

from __future__ import annotations

import pytest

from flows import eventstore

from .amqp_support import BrokerModeClass
from .interactive_support import interactive_run

pytestmark = pytest.mark.django_db(transaction=True)

HANDS_ON = {"orders": 0, "crash_at": 0, "acks_late": True, "idempotent": False}


def workers_up(run, count: int) -> None:
    """Until ``count`` workers are consuming: starting a ``celery worker`` process takes seconds."""
    run.events(lambda ev: sum(1 for e in ev if e["kind"] == "assign") >= count, 60, f"{count} workers to start")


def of(events: list[dict], kind: str, order: str) -> list[dict]:
    return [e for e in events if e["kind"] == kind and e["message_id"] == order]


class InteractiveCeleryContract(BrokerModeClass):
    def test_hand_placed_orders_are_processed_and_an_added_worker_takes_tasks(self) -> None:
        with interactive_run("celery-order", **HANDS_ON, work_ms=800, workers=1) as run:
            workers_up(run, 1)
            first = run.do("publish")["message_id"]
            assert first == "order-1"
            run.events(lambda ev: of(ev, "process", first), 30, f"{first} to be processed")

            run.do("add_consumer", queue="orders")
            workers_up(run, 2)
            assert run.menu()["crash"]["targets"] == ["worker:w1", "worker:w2"]
            # One task at a time per worker (prefetch 1, acked late): w1 busy, the next goes to w2.
            placed = [run.do("publish", order=f"hand-{n}")["message_id"] for n in (1, 2)]
            assert placed == ["hand-1", "hand-2"]
            events = run.events(lambda ev: all(of(ev, "deliver", o) for o in placed), 30, "both orders delivered")
            takers = {of(events, "deliver", o)[0]["attrs"]["worker"] for o in placed}
            assert takers == {"w1", "w2"}

            run.events(lambda ev: all(of(ev, "ack", o) for o in placed), 30, "both orders acked")
            run.do("remove_consumer", target="worker:w2", queue="orders")  # warm: an idle worker stops at once
            last = run.do("publish")["message_id"]
            events = run.events(lambda ev: of(ev, "process", last), 30, f"{last} processed")
            assert of(events, "deliver", last)[0]["attrs"]["worker"] == "w1"
            summary = run.finish()
        events = eventstore.read_events(run.run_id, 0, 100_000)
        assert [e["attrs"]["status"] for e in events if e["kind"] == "response"] == [202] * 4
        assert all(e["attrs"]["planned"] is False for e in events if e["kind"] in ("response", "process"))
        assert [(e["kind"], e["attrs"]["by_hand"]) for e in events if e["actor"] == "worker:w2"
                and e["kind"] in ("assign", "revoke")] == [("assign", True), ("revoke", True)]
        counts, result = summary["counts"], summary["result"]
        assert counts["processed"] == 4 and counts["duplicates"] == 0 and counts["lost"] == 0
        assert result["placed_by_hand"] == ["order-1", "hand-1", "hand-2", last] and result["finished"] == 4
        assert result["broker_ready"] == 0 and summary["expected"] == 0

    def test_killing_a_worker_mid_task_runs_it_again_and_restart_brings_it_back(self) -> None:
        with interactive_run("celery-order", **HANDS_ON, work_ms=1500, workers=2) as run:
            workers_up(run, 2)
            order = run.do("publish")["message_id"]
            first = run.events(lambda ev: of(ev, "deliver", order), 30, f"{order} delivered")
            victim = of(first, "deliver", order)[0]["attrs"]["worker"]
            said = run.do("crash", target=f"worker:{victim}")["result"]
            assert f"worker:{victim} killed" in said and order in said
            again = run.events(lambda ev: len(of(ev, "deliver", order)) == 2 and of(ev, "ack", order), 40,
                               f"{order} delivered again and finished")
            redelivery = of(again, "deliver", order)[1]
            assert redelivery["attrs"]["worker"] != victim and redelivery["attrs"]["redelivered"] is True
            assert redelivery["duplicate"] and "acks_late" in redelivery["attrs"]["reason"]

            assert run.menu()["restart"]["targets"] == [f"worker:{victim}"]
            run.do("restart", target=f"worker:{victim}")
            assert f"worker:{victim}" in run.menu()["crash"]["targets"]
            workers_up(run, 3)  # w1, w2 and the restarted one
            summary = run.finish()
        counts, result = summary["counts"], summary["result"]
        assert counts["duplicates"] == 1 and counts["lost"] == 0
        assert result["crashes"][0]["running"] == [order] and result["finished"] == 1


class TestInteractiveCeleryEmbedded(InteractiveCeleryContract):
    mode = "embedded"

    def test_bad_params_and_the_worker_bound_are_a_400(self) -> None:
        with interactive_run("celery-order", **HANDS_ON, work_ms=0, workers=1) as run:
            workers_up(run, 1)
            for action, params, field in [
                ("publish", {"order": "no spaces please"}, "order"),
                ("add_consumer", {"queue": "payments"}, "queue"),
                ("remove_consumer", {"queue": "orders"}, "queue"),  # the last worker stays
            ]:
                response = run.act(action, **params)
                assert response.status_code == 400, (action, response.json())
                assert list(response.json()["errors"]) == [field], response.json()
            placed = run.do("publish", order="o-1")["message_id"]
            again = run.act("publish", order=placed)
            assert again.status_code == 400 and "order" in again.json()["errors"]
            for _ in range(3):
                run.do("add_consumer", queue="orders")
            assert run.act("add_consumer", queue="orders").json()["errors"]["queue"] == "at most 4 workers per run"
            run.do("remove_consumer", target="worker:w2", queue="orders")
            assert "worker:w2" not in run.menu()["crash"]["targets"]
            after = run.do("publish")["message_id"]  # the others still take orders
            run.events(lambda ev: of(ev, "process", after), 30, f"{after} processed")
            summary = run.finish()
        assert summary["counts"]["processed"] == 2
        assert any(e["kind"] == "revoke" and e["actor"] == "worker:w2"
                   for e in eventstore.read_events(run.run_id, 0, 100_000))


class TestInteractiveCeleryRabbitMQ(InteractiveCeleryContract):
    mode = "external"
