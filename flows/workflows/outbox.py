"""``outbox``: a service that stores an order and publishes "order placed", with and without one transaction.

A service handles ``messages`` orders: it writes each to its database (the ``ServiceOrder``
table, in the app's own database: SQLite embedded, PostgreSQL external) and publishes an
"order placed" message (RabbitMQ/kombu or Kafka/Tansu: the ``broker`` parameter). The
consumer (``billing``) keeps an inbox (``flows.inbox``) and acts once per message id.

* ``dual-write``: two writes, no transaction spans them. ``commit-then-publish``: the
  ``crash_at``-th order is committed and the service dies before publishing, so the order
  exists and nobody hears of it (lost). ``publish-then-commit``: the message goes out and
  the service dies before committing, so the consumer acts on an order that does not exist
  (a phantom).
* ``outbox``: the order and an ``OutboxRow`` (pending) in one ``transaction.atomic``; a relay
  thread publishes pending rows and marks them sent. It crashes (at the ``crash_at``-th
  order, or by the *Crash relay* button) between the publish and the mark, restarts, and
  publishes the row again: a duplicate, which the consumer's inbox suppresses. Nothing
  lost, every effect exactly once.

Events: ``commit`` on ``db:orders`` (an order stored), ``enqueue`` on ``db:outbox`` (a row
written, ``outbox_state: pending``) and ``commit`` on ``db:outbox`` (marked ``sent``),
``publish`` by the service or the relay (``attempt`` 2 for the relay's second publish),
``route``, ``deliver`` and ``process`` (``effect`` false when the inbox suppressed it) on
``consumer:billing``, ``crash`` of the service or the relay, ``assign`` when the relay (re)starts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from .. import inbox
from ..ledger import DeliveryLedger
from ..outbox.carriers import CONSUMER, Carrier, carrier_for
from ..outbox.outcomes import outcomes
from ..outbox.relay import RELAY, Relay
from ..params import choice_param, crash_within_messages, float_param, int_param
from ..registry import Workflow, action

SERVICE = "service"
ORDERS, OUTBOX = "db:orders", "db:outbox"
MODES = ("outbox", "dual-write")
ORDERS_IN_DUAL_WRITE = ("commit-then-publish", "publish-then-commit")
BROKERS = ("amqp", "kafka")
DUPLICATE_REASON = "the relay published it again: it had crashed after publishing, before marking the row sent"


ROW_RECORDED_WAIT_S = 2.0


def order_of(n: int) -> tuple[str, str]:
    """Order ``n``'s id and its message's id."""
    return f"order-{n}", f"m-{n}"


class Outbox(Workflow):
    slug = "outbox"
    title = "Outbox vs dual write: lost, phantom and duplicate messages"
    pattern = "async"
    protocol = "amqp | kafka"
    lesson = (
        "A service that stores an order and publishes a message cannot make both writes one transaction: the "
        "database and the broker do not share one. Written one after the other, a crash between them loses the "
        "message (commit, then publish) or sends a message for an order that never existed (publish, then commit). "
        "The transactional outbox writes the message into the database in the same transaction as the order; a "
        "relay publishes it and marks it sent. A relay crash between the two publishes it again, so the consumer "
        "must be idempotent: its inbox suppresses the duplicate, and every order has its effect exactly once."
    )
    params = {
        "messages": int_param(8, 0, 500, "Orders the service handles (each stored and announced by one message)"),
        "mode": choice_param("outbox", MODES, "outbox: order and outbox row in one transaction, a relay publishes; "
                             "dual-write: the service writes the database and the broker one after the other",
                             label="Mode"),
        "order": choice_param("commit-then-publish", ORDERS_IN_DUAL_WRITE,
                              "dual-write only: which write comes first (the crash falls between the two)",
                              label="Dual-write order"),
        "crash_at": int_param(3, 0, 500, "The crash at the N-th order (0 = never): the service between its two "
                                         "writes (dual-write), the relay between publish and mark sent (outbox)"),
        "broker": choice_param("amqp", BROKERS, "Where the message goes: amqp (RabbitMQ, or kombu's memory "
                               "transport embedded) or kafka (Kafka, or Tansu embedded)", label="Broker"),
        "rate": float_param(4.0, 0.0, 1000.0, "Orders per second (0 = as fast as possible)"),
        "restart_ms": int_param(500, 0, 10000, "A crashed relay comes back after this long"),
    }

    def expected(self, params: dict[str, Any]) -> int:
        return params["messages"]

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        cleaned, errors = super().validate(given)
        crash_within_messages(cleaned, errors, "orders")
        return cleaned, errors

    @classmethod
    def brokers_of(cls, params: Any) -> list[str]:
        return [params.get("broker", cls.params["broker"].default)]

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        from django.db import connection

        self.database = connection.vendor
        self.ledger = DeliveryLedger()
        self._lock = threading.Lock()
        # Held while a message is handed to the broker and its publish recorded: a delivery is
        # recorded after its publish, whichever thread gets there first.
        self._publishing = threading.Lock()
        # The outbox rows whose writing is in the log: the relay, which may read a row the
        # moment the service's transaction commits, waits for it so the log reads written, then sent.
        self._rows_recorded: set[str] = set()
        self._row_recorded = threading.Condition()
        self.placed: list[str] = []  # order ids, scripted and by hand
        self.publishes = 0
        self.deliveries = 0
        self.effects: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.crash_log: list[dict[str, Any]] = []
        self.crash_armed = False
        self.crash_at_done = False
        self.relay: Relay | None = None
        self.carrier: Carrier = carrier_for(self.p["broker"], self.ctx)
        self.carrier.open()

    def start_consumers(self) -> None:
        self.carrier.consume(self._deliver)
        self.ctx.emit("assign", f"consumer:{CONSUMER}", consumer=CONSUMER, inbox=True, broker=self.p["broker"])
        if self.p["mode"] == "outbox":
            self.relay = Relay(self.ctx.run_id, self._relay_publish, self._relay_crash_due, self._relay_crashed,
                               self._relay_restarted, self._relay_sent, self.p["restart_ms"] / 1000.0)
            self.relay.start()
            self.ctx.emit("assign", RELAY, table="outbox", reason="the relay reads the outbox's pending rows")

    def produce(self) -> None:
        pacer = self.ctx.pacer(self.p["rate"])
        for _ in range(self.p["messages"]):
            pacer.wait()
            self._place()

    def settle(self) -> None:
        try:
            self.ctx.wait_until(self._settled, 20.0 + self.p["messages"] * 0.05 + self.p["restart_ms"] / 1000.0,
                                "every outbox row sent and every published message delivered")
        except TimeoutError:
            pass  # what is missing is reported as lost
        self._stop()

    def report(self) -> dict[str, Any]:
        from ..models import OutboxRow, ServiceOrder

        run_id = self.ctx.run_id
        stored = set(ServiceOrder.objects.filter(run_id=run_id).values_list("order_id", flat=True))
        rows = Counter(OutboxRow.objects.filter(run_id=run_id).values_list("state", flat=True))
        per_order = outcomes(self.placed, stored, self.effects, self.suppressed)
        tally = Counter(per_order.values())
        return {
            "mode": self.p["mode"],
            "order": self.p["order"] if self.p["mode"] == "dual-write" else None,
            "broker": self.p["broker"],
            "database": self.database,
            "outcomes": per_order,
            "outcome_counts": dict(tally),
            "orders_stored": len(stored),
            "outbox": {"rows": sum(rows.values()), "pending": rows.get("pending", 0), "sent": rows.get("sent", 0)},
            "published": self.publishes,
            "delivered": self.deliveries,
            "lost": tally.get("lost", 0),
            "phantom": tally.get("phantom", 0),
            "duplicates": self.ledger.duplicates(),
            "effects": sum(self.effects.values()),
            "suppressed": sum(self.suppressed.values()),
            "crashes": self.crash_log,
        }

    def teardown(self) -> None:
        self._stop()
        if getattr(self, "carrier", None) is not None:
            self.carrier.close()

    def tick(self) -> None:
        super().tick()
        failed = getattr(self, "carrier", None) and self.carrier.error
        if failed:
            raise RuntimeError(f"consumer {CONSUMER} failed: {failed}")
        relay = getattr(self, "relay", None)
        if relay is not None and relay.error is not None:
            raise RuntimeError(f"the relay failed: {self.relay.error}")

    # -- actions -----------------------------------------------------------------------------

    @action("Crash relay")
    def on_crash(self, target: str) -> str:
        self.crash_armed = True
        return "the relay will crash after its next publish, before marking the row sent"

    @action("Place order", hands_on=True)
    def on_order(self, target: str) -> dict[str, Any]:
        order_id, message_id = self._place(planned=False)
        return {"result": f"placed {order_id} ({self.p['mode']})", "message_id": message_id}

    def check_action(self, name: str, target: str, params: dict[str, Any]) -> dict[str, str]:
        if name == "crash" and self.p.get("mode") != "outbox":
            return {"mode": "dual-write has no relay to crash; crash_at crashes the service between its two writes"}
        return super().check_action(name, target, params)

    # -- the service ---------------------------------------------------------------------------

    def _place(self, planned: bool = True) -> tuple[str, str]:
        """The service handles the next order the way ``mode`` says."""
        with self._lock:
            n = len(self.placed) + 1
            order_id, message_id = order_of(n)
            self.placed.append(order_id)
        payload = {"order_id": order_id, "message_id": message_id, "n": n}
        hand = {} if planned else {"by_hand": True}
        crash = planned and n == self.p["crash_at"]
        if self.p["mode"] == "outbox":
            self._store(order_id, message_id, payload, hand)
        elif self.p["order"] == "commit-then-publish":
            self._store(order_id, message_id, None, hand)
            if crash:
                self._service_crash(order_id, message_id, "after the commit, before the publish: the order is stored, "
                                                          "its message is never sent")
            else:
                self._publish(SERVICE, message_id, payload, 1, hand)
        else:
            self._publish(SERVICE, message_id, payload, 1, hand)
            if crash:
                self._service_crash(order_id, message_id, "after the publish, before the commit: the message is out, "
                                                          "its order never stored")
            else:
                self._store(order_id, message_id, None, hand)
        return order_id, message_id

    def _store(self, order_id: str, message_id: str, outbox_payload: dict[str, Any] | None,
               hand: dict[str, Any]) -> None:
        """Commit the order, and with ``outbox_payload`` its outbox row in the same transaction."""
        from django.db import transaction

        from ..models import OutboxRow, ServiceOrder

        with transaction.atomic():
            ServiceOrder.objects.create(run_id=self.ctx.run_id, order_id=order_id)
            if outbox_payload is not None:
                OutboxRow.objects.create(run_id=self.ctx.run_id, order_id=order_id, message_id=message_id,
                                         payload=outbox_payload)
        with_row = outbox_payload is not None
        self.ctx.emit("commit", ORDERS, message_id, table="orders", order_id=order_id, database=self.database,
                      outbox_row=with_row, **hand)
        if with_row:
            self.ctx.emit("enqueue", OUTBOX, message_id, table="outbox", order_id=order_id, outbox_state="pending",
                          reason="written in the same transaction as the order", **hand)
            with self._row_recorded:
                self._rows_recorded.add(message_id)
                self._row_recorded.notify_all()

    def _service_crash(self, order_id: str, message_id: str, between: str) -> None:
        self.crash_log.append({"who": SERVICE, "order_id": order_id, "t_ms": round(self.ctx.elapsed_ms(), 3)})
        self.ctx.emit("crash", SERVICE, message_id, message_ids=[message_id], order_id=order_id,
                      reason=f"crash_at={self.p['crash_at']}: the service crashed {between}",
                      restart="the service comes back and handles the next order")

    def _publish(self, actor: str, message_id: str, payload: dict[str, Any], attempt: int,
                 extra: dict[str, Any]) -> None:
        with self._publishing:
            started = time.perf_counter()
            self.ledger.sent(message_id, started)
            where = self.carrier.publish(message_id, payload)
            with self._lock:
                self.publishes += 1
            again = attempt > 1
            if again:
                extra = {**extra, "reason": DUPLICATE_REASON}
            self.ctx.emit("publish", actor, message_id, attempt, again, order_id=payload["order_id"], confirmed=True,
                          perceived_ms=round((time.perf_counter() - started) * 1000.0, 3), **where, **extra)
            self.ctx.emit("route", self.carrier.route_actor, message_id, attempt, again, **where)

    # -- the relay (its own thread) ----------------------------------------------------------

    def _relay_publish(self, row: Any, attempt: int) -> None:
        with self._row_recorded:
            # Briefly at most: a service that crashed after its commit must not stop the relay.
            self._row_recorded.wait_for(lambda: row.message_id in self._rows_recorded, ROW_RECORDED_WAIT_S)
        self._publish(RELAY, row.message_id, row.payload, attempt, {"outbox_state": "pending"})

    def _relay_crash_due(self, row: Any) -> str:
        if self.crash_armed:
            self.crash_armed = False
            return "the Crash relay button"
        if not self.crash_at_done and row.order_id == order_of(self.p["crash_at"])[0] and self.p["crash_at"]:
            self.crash_at_done = True
            return f"crash_at={self.p['crash_at']}"
        return ""

    def _relay_crashed(self, row: Any, reason: str) -> int:
        self.crash_log.append({"who": RELAY, "order_id": row.order_id, "t_ms": round(self.ctx.elapsed_ms(), 3)})
        seq = self.ctx.emit("crash", RELAY, row.message_id, message_ids=[row.message_id], order_id=row.order_id,
                            outbox_state="pending", restart_in_ms=self.p["restart_ms"],
                            reason=f"{reason}: the relay crashed after publishing, before marking the row sent")
        self.ledger.expect_again(CONSUMER, row.message_id, DUPLICATE_REASON)
        self.ledger.caused_by(CONSUMER, row.message_id, seq)
        return seq

    def _relay_restarted(self) -> None:
        self.ctx.emit("assign", RELAY, table="outbox", restarted=True,
                      reason="the relay restarted: it reads the outbox's pending rows again")

    def _relay_sent(self, row: Any) -> None:
        self.ctx.emit("commit", OUTBOX, row.message_id, table="outbox", order_id=row.order_id, outbox_state="sent",
                      publishes=row.publishes)

    # -- the consumer (its own thread) --------------------------------------------------------

    def _deliver(self, message_id: str, payload: dict[str, Any], where: dict[str, Any]) -> None:
        with self._publishing:
            pass  # the publish of this message is recorded before its delivery
        ctx = self.ctx
        actor = f"consumer:{CONSUMER}"
        order_id = payload["order_id"]
        d = self.ledger.delivered(CONSUMER, message_id, DUPLICATE_REASON, CONSUMER)
        extra: dict[str, Any] = {"reason": d.reason} if d.duplicate else {}
        cause = {"cause_seq": d.cause_seq} if d.cause_seq else {}
        ctx.emit("deliver", actor, message_id, d.attempt, d.duplicate, consumer=CONSUMER, order_id=order_id,
                 **where, **extra, **cause)
        effect = inbox.first_time(ctx.run_id, CONSUMER, message_id)
        if not effect:
            extra["suppressed"] = "already in the inbox: the effect was applied by an earlier delivery"
        if payload["n"] > self.p["messages"]:
            extra["planned"] = False
        timing = {"end_to_end_ms": d.end_to_end_ms} if d.end_to_end_ms is not None and not d.duplicate else {}
        with self._lock:
            (self.effects if effect else self.suppressed)[order_id] += 1
            self.deliveries += 1
        ctx.emit("process", actor, message_id, d.attempt, d.duplicate, effect=effect, consumer=CONSUMER,
                 order_id=order_id, idempotent=True, **extra, **timing)

    # -- settling -------------------------------------------------------------------------

    def _settled(self) -> bool:
        from ..models import OutboxRow

        if self.relay is not None and OutboxRow.objects.filter(run_id=self.ctx.run_id, state="pending").exists():
            return False
        with self._lock:
            return self.deliveries >= self.publishes

    def _stop(self) -> None:
        if getattr(self, "relay", None) is not None:
            self.relay.stop()
