"""``celery-order`` with a real ``celery worker`` process on RabbitMQ, and an in-process worker embedded.

The crash is a kill of the worker mid-task, after the charge and before the task returns.
With ``acks_late`` the broker delivers the task again (``redelivered``) and it runs again;
without, it was acked on receipt and is never finished.
"""

from __future__ import annotations

import pytest

from flows.models import InboxEntry

from .amqp_support import BrokerModeClass, Finished, run_workflow
from .causes import duplicates_name_their_cause

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = 3
# Two workers: the killed one's task goes to the other at once, no waiting for a replacement.
CRASH = {"orders": ORDERS, "rate": 0, "work_ms": 400, "crash_at": 2, "workers": 2}


def order_deliveries(run: Finished, order: str) -> list[dict]:
    return [e for e in run.of("deliver", "worker:") if e["message_id"] == order]


class CeleryOrderContract(BrokerModeClass):
    def test_perceived_latency_is_the_enqueue_not_the_work(self) -> None:
        run = run_workflow("celery-order", orders=ORDERS, rate=0, work_ms=300, crash_at=0)
        latency, counts = run.summary["latency_ms"], run.counts
        assert counts["published"] == counts["processed"] == ORDERS and counts["duplicates"] == 0
        assert [e["attrs"]["status"] for e in run.of("response")] == [202] * ORDERS
        assert latency["perceived"]["count"] == latency["end_to_end"]["count"] == ORDERS
        assert latency["perceived"]["max"] < latency["end_to_end"]["p50"]
        # The 202 came back before the worker even charged the order.
        for response in run.of("response"):
            charged = [e for e in run.of("process") if e["message_id"] == response["message_id"]]
            assert charged and response["seq"] < charged[0]["seq"]
        assert run.result["lost"] == 0 and run.result["broker_ready"] == 0 and run.result["unfinished"] == []

    def test_acks_late_worker_kill_runs_the_task_again(self) -> None:
        run = run_workflow("celery-order", acks_late=True, idempotent=False, **CRASH)
        first, again = order_deliveries(run, "order-2")
        assert first["attrs"]["worker"] != again["attrs"]["worker"]  # the killed worker's replacement
        assert again["duplicate"] and again["attempt"] == 2 and again["attrs"]["redelivered"] is True
        assert "acks_late" in again["attrs"]["reason"]
        crash = run.of("crash")[0]
        assert crash["attrs"]["running"] == ["order-2"] and first["seq"] < crash["seq"] < again["seq"]
        r, c = run.result, run.counts
        assert r["charges"]["order-2"] == 2 and r["side_effects"]["repeated"] == {"order-2": 2}  # charged twice
        assert c["duplicates"] == 1 and c["effects"] == c["processed"] == ORDERS + 1
        assert r["finished"] == ORDERS and r["lost"] == 0 and r["workers_started"] == 2  # the other one took over

    def test_idempotent_task_charges_once(self) -> None:
        run = run_workflow("celery-order", acks_late=True, idempotent=True, **CRASH)
        assert len(order_deliveries(run, "order-2")) == 2
        # The kill names the task it interrupted; the second delivery points back at the kill.
        (crash,) = run.of("crash")
        assert crash["attrs"]["message_ids"] == ["order-2"] == [d["message_id"] for d in
                                                              duplicates_name_their_cause(run.events, ("crash",))]
        c, r = run.counts, run.result
        assert c["duplicates"] == 1 and c["effects"] == ORDERS == c["processed"] - 1
        assert r["charges"] == {f"order-{n}": 1 for n in range(1, ORDERS + 1)}
        suppressed = [e for e in run.of("process") if e["attrs"]["effect"] is False]
        assert [e["message_id"] for e in suppressed] == ["order-2"] and suppressed[0]["duplicate"]
        assert InboxEntry.objects.filter(run_id=run.summary["id"]).count() == ORDERS

    def test_without_acks_late_the_killed_task_is_never_finished(self) -> None:
        run = run_workflow("celery-order", acks_late=False, idempotent=False, **CRASH)
        assert len(order_deliveries(run, "order-2")) == 1 and run.counts["duplicates"] == 0
        early = [e for e in run.of("ack") if e["attrs"].get("early")]
        assert len(early) == ORDERS  # acked on receipt, before running
        r = run.result
        assert r["abandoned"] == ["order-2"] and r["unfinished"] == ["order-2"] and r["broker_ready"] == 0
        # Charged, but its receipt never went out and nothing runs it again: lost, on the counter too.
        assert r["charges"]["order-2"] == 1 and r["lost"] == 1 and run.counts["lost"] == 1
        done = run.of("done")[0]
        assert done["attrs"]["lost"] == 1


class TestCeleryOrderEmbedded(CeleryOrderContract):
    mode = "embedded"


class TestCeleryOrderRabbitMQ(CeleryOrderContract):
    mode = "external"
    on_stack = ("test_idempotent_task_charges_once",)  # the worker process writes its inbox rows to PostgreSQL
