"""An interactive ``amqp-redelivery`` run driven through the API: publish, crash, restart and
toggle the inbox by hand, on the embedded broker and on RabbitMQ.

One consumer that stays down after a crash until *restart* (restart_ms is long), so each
redelivery happens when the test says: a duplicate applies its effect twice with the
inbox off, and once with the inbox turned on before the message was first handled.
"""

from __future__ import annotations

import pytest

from flows import eventstore
from flows.models import InboxEntry

from .amqp_support import BrokerModeClass
from .interactive_support import interactive_run

pytestmark = pytest.mark.django_db(transaction=True)

HANDS_ON = {"messages": 0, "crash_at": 0, "idempotent": False, "consumers": 1, "prefetch": 1, "work_ms": 0,
            "restart_ms": 10_000}
CONSUMER = "consumer:work/1"


def of(events: list[dict], kind: str, message_id: str) -> list[dict]:
    return [e for e in events if e["kind"] == kind and e["message_id"] == message_id]


def consuming(run) -> None:
    run.events(lambda ev: any(e["kind"] == "assign" and e["actor"] == CONSUMER for e in ev), 30, "the consumer")


class InteractiveRedeliveryContract(BrokerModeClass):
    def crash_and_restart(self, run, body: str) -> str:
        """Arm a crash, publish: the consumer handles the message and dies before its ack; restart it."""
        consuming(run)
        run.do("crash", target=CONSUMER)
        message_id = run.do("publish", body=body)["message_id"]
        run.events(lambda ev: of(ev, "crash", message_id), 30, f"a crash holding {message_id}")
        assert run.menu()["restart"]["targets"] == [CONSUMER]
        run.do("restart", target=CONSUMER)
        run.events(lambda ev: of(ev, "ack", message_id), 30, f"{message_id} redelivered and acked")
        return message_id

    def test_the_inbox_toggle_suppresses_the_duplicate_after_a_crash(self) -> None:
        with interactive_run("amqp-redelivery", **HANDS_ON) as run:
            plain = self.crash_and_restart(run, "inbox off")
            assert "inbox on" in run.do("inbox", on=True)["result"]
            guarded = self.crash_and_restart(run, "inbox on")
            run.do("inbox", on=False)
            after = run.do("publish", body="inbox off again")["message_id"]
            run.events(lambda ev: of(ev, "ack", after), 30, f"{after} acked")
            summary = run.finish()
        events = eventstore.read_events(run.run_id, 0, 100_000)
        for message_id in (plain, guarded):
            first, again = of(events, "deliver", message_id)
            assert again["duplicate"] and again["attrs"]["redelivered"] is True
        effects = {message_id: [e["attrs"]["effect"] for e in of(events, "process", message_id)]
                   for message_id in (plain, guarded)}
        assert effects == {plain: [True, True], guarded: [True, False]}
        result, counts = summary["result"], summary["counts"]
        assert result["side_effects"]["repeated"] == {plain: 2}
        assert result["inbox"]["handled_with_inbox"] == [guarded]
        assert [t["on"] for t in result["inbox"]["toggles"]] == [True, False] and result["inbox"]["on"] is False
        assert result["published_by_hand"] == [plain, guarded, after]
        assert counts["published"] == 3 and counts["duplicates"] == 2 and counts["lost"] == 0
        assert result["counts_agree"] and result["queue_counts"]["work"]["broker_ready"] == 0
        assert InboxEntry.objects.filter(run_id=run.run_id).count() == 1
        toggles = [(e["kind"], e["attrs"]["inbox"]) for e in events if e["actor"] == "queue:work" and "inbox" in e["attrs"]]
        assert toggles == [("assign", True), ("revoke", False)]

    def test_a_bad_inbox_param_and_restarting_a_running_consumer_are_a_400(self) -> None:
        with interactive_run("amqp-redelivery", **HANDS_ON) as run:
            consuming(run)
            response = run.act("inbox", on="maybe")
            assert response.status_code == 400 and list(response.json()["errors"]) == ["on"]
            response = run.act("restart", target=CONSUMER)  # it is not down
            assert response.status_code == 400 and "target" in response.json()["errors"]
            run.finish()


class TestInteractiveRedeliveryEmbedded(InteractiveRedeliveryContract):
    mode = "embedded"


class TestInteractiveRedeliveryRabbitMQ(InteractiveRedeliveryContract):
    mode = "external"
