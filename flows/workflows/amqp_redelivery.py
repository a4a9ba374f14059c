"""``amqp-redelivery``: a consumer crashes before its ack, the broker delivers again (lesson 7).

Consuming is receive, handle, then ack. A consumer that dies between handling and ack
leaves the broker no way to know the work was done: it requeues the message, sets
``redelivered`` and delivers it again, to the same consumer once it is back or to
another. The second delivery is a duplicate. With ``idempotent`` on, the consumer keeps an
inbox (``InboxEntry``: one row per queue and message id, unique), so the duplicate is
received but its effect is suppressed, and the side-effect counter shows every message
applied exactly once.

The crash is real as far as the broker can tell: the consumer's socket is shut down under
its connection (no channel.close, no connection.close), exactly what a killed process
leaves behind. It happens after handling the ``crash_at``-th message, with a probability
per message, or on demand (the **Crash consumer** button).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

from .. import inbox
from ..amqp.ledger import Ledger
from ..amqp.workflow import AmqpWorkflow
from ..params import Param, bool_param, float_param, int_param
from ..registry import action

PRODUCER = "producer"
EXCHANGE, EXCHANGE_TYPE, QUEUE, KEY = "tasks", "direct", "work", "work"

PUBLISH_PARAMS = {"body": Param("text", "", "Message body (text, optional); the id is the next m-N",
                                max_length=1000, label="Body")}
INBOX_PARAMS = {"on": bool_param(True, "Consumers check the inbox of applied message ids from now on and "
                                       "suppress a duplicate's effect", label="Inbox on")}


class AmqpRedelivery(AmqpWorkflow):
    slug = "amqp-redelivery"
    title = "AMQP: crash before ack, redelivery, duplicates"
    pattern = "async"
    lesson = (
        "A message cannot be guaranteed to be consumed exactly once. The consumer receives a message, handles "
        "it, then acks. If it crashes after handling and before the ack, the broker cannot know the work was "
        "done: it requeues the message (redelivered = true) and delivers it again, a duplicate. An idempotent "
        "consumer keeps an inbox of message ids it has applied and suppresses the duplicate's effect."
    )
    params = {
        "messages": int_param(10, 0, 2000, "How many messages to publish"),
        "rate": float_param(2.0, 0.0, 2000.0, "Messages per second (0 = as fast as possible)"),
        "consumers": int_param(2, 1, 4, "Consumers on the queue"),
        "crash_at": int_param(3, 0, 2000, "consumer work/1 crashes after handling its N-th message, before acking (0 = never)"),
        "crash_probability": float_param(0.0, 0.0, 0.5, "Chance that any handled message crashes its consumer before the ack"),
        "idempotent": bool_param(False, "Consumers keep an inbox and suppress duplicates' effects"),
        "prefetch": int_param(1, 1, 100, "Unacked messages the broker may push to each consumer ahead"),
        "work_ms": int_param(150, 0, 5000, "Time a consumer spends on each message"),
        "restart_ms": int_param(800, 0, 10000, "A crashed consumer comes back after this long"),
    }

    def expected(self, params: dict[str, Any]) -> int:
        return params["messages"]


    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        from ..amqp.resources import RunTopology
        from ..amqp.routing_rules import Binding

        amqp = self.ctx.broker("amqp")
        self.ledger = Ledger()
        self.effects = SideEffects()
        self.idempotent = self.p["idempotent"]
        self.crashes = CrashPlan(self.p["crash_at"], self.p["crash_probability"], self.ctx.run_id)
        self.crash_log: list[dict[str, Any]] = []
        self.down: set[str] = set()  # crashed consumers until they are back
        self.acked_ids: set[str] = set()
        self.processed_ids: set[str] = set()
        self.all_acked = threading.Event()
        self._lock = threading.Lock()
        self.published = 0  # scripted and by hand: the last m-N
        self.hand_ids: list[str] = []
        self.inbox_handled: list[str] = []  # messages handled while the inbox was on, in order, once each
        self.inbox_toggles: list[dict[str, Any]] = []
        self.hand_producer: Any = None
        self.returned: list[str] = []  # basic.return of a mandatory publish: the work queue is gone
        self.declare(amqp, RunTopology(self.ctx.namespace, EXCHANGE, EXCHANGE_TYPE, [Binding(QUEUE, KEY)]))

    def start_consumers(self) -> None:
        for n in range(1, self.p["consumers"] + 1):
            self.consume(QUEUE, f"{QUEUE}/{n}", self._handle, prefetch=self.p["prefetch"],
                         restart_after_s=self.p["restart_ms"] / 1000.0, on_restart=self._restarted,
                         on_exit=_close_thread_db)
        self.consuming()

    def produce(self) -> None:
        self._publish_all(self.publisher)

    def settle(self) -> None:
        self._check_acked()  # nothing to wait for when nothing was published
        try:
            self.ctx.wait_for(self.all_acked, self._drain_timeout(), "every message to be acked")
        except TimeoutError:
            pass  # reported as lost
        self.stop_consumers()

    def report(self) -> dict[str, Any]:
        return self._result(self.topology.ready_counts(self.channel)[QUEUE])

    @action("Crash consumer", target="consumer", picks=True)
    def on_crash(self, target: str) -> str:
        name = target.removeprefix("consumer:")
        self.crashes.arm(name)
        who = f"consumer:{name}" if name else "the next consumer to handle a message"
        return f"{who} will crash after its next message, before the ack"

    # -- hands on (interactive runs) ---------------------------------------------------

    @action("Publish", params=PUBLISH_PARAMS, hands_on=True)
    def on_publish(self, target: str, body: str) -> dict[str, Any]:
        from kombu import Producer

        if self.hand_producer is None:
            self.hand_producer = Producer(self.publisher.channel(), exchange=self.topology.exchange,
                                          on_return=self._on_return)
        message_id = self._publish_one(self.hand_producer, body)
        with self._lock:
            self.hand_ids.append(message_id)
        self._check_acked()
        return {"result": f"published {message_id} to {QUEUE} (confirmed)", "message_id": message_id}

    @action("Restart consumer", target="consumer", hands_on=True)
    def on_restart(self, target: str) -> str:
        name = target.removeprefix("consumer:")
        consumer = next((c for c in self.consumers if c.name == name), None)
        if consumer is None or name not in self.down:
            return f"consumer:{name} is not down"
        consumer.restart_now()
        return f"consumer:{name} comes back now; the broker delivers what it requeued"

    @action("Inbox", params=INBOX_PARAMS, hands_on=True)
    def on_inbox(self, target: str, on: bool) -> str:
        was, self.idempotent = self.idempotent, on
        self.inbox_toggles.append({"on": on, "t_ms": round(self.ctx.elapsed_ms(), 3), "published": self.published})
        state = "on" if on else "off"
        self.ctx.emit("assign" if on else "revoke", f"queue:{QUEUE}", queue=QUEUE, inbox=on, by_hand=True,
                      reason=f"the consumers' inbox is {state} from now on" + ("" if was != on else " (it was already)"))
        if on:
            return "inbox on: a message handled from now on is applied once, a duplicate's effect is suppressed"
        return "inbox off: every delivery applies its effect again, duplicates included"

    def targets(self, action: str) -> list[str]:
        """Consumers running now: not stopped, not down after a crash (back after restart_ms); restart: the down ones."""
        down = getattr(self, "down", set())
        if action == "restart":
            return [f"consumer:{name}" for name in sorted(down)]
        return [f"consumer:{c.name}" for c in list(self.consumers)
                if c.alive and not c.stopping.is_set() and c.name not in down]

    # -- consumers ----------------------------------------------------------------------

    def _restarted(self, consumer: Any) -> None:
        self.down.discard(consumer.name)
        self.ctx.emit("assign", f"consumer:{consumer.name}", queue=QUEUE, consumer=consumer.name, mode="push",
                      prefetch=consumer.prefetch, restarted=True, incarnation=consumer.crashes + 1)

    def _handle(self, consumer: Any, message: Any) -> None:
        ctx = self.ctx
        message_id = message.properties.get("message_id") or message.payload["id"]
        info = message.delivery_info
        redelivered = bool(info.get("redelivered"))
        actor = f"consumer:{consumer.name}"
        self.ledger.wait_announced(message_id)
        d = self.ledger.delivered(QUEUE, message_id, consumer.name, redelivered)
        common = {"queue": QUEUE, "consumer": consumer.name}
        extra: dict[str, Any] = {"reason": d.reason} if d.duplicate else {}
        cause = {"cause_seq": d.cause_seq} if d.cause_seq else {}
        ctx.emit("deliver", actor, message_id, d.attempt, d.duplicate, exchange=EXCHANGE, routing_key=KEY,
                 redelivered=redelivered, delivery_tag=info.get("delivery_tag"), mode="push", **common, **extra, **cause)
        if self.p["work_ms"]:
            consumer.stopping.wait(self.p["work_ms"] / 1000.0)
        with_inbox = self.idempotent  # read once: the inbox action may toggle it meanwhile
        effect = not with_inbox or inbox.first_time(ctx.run_id, QUEUE, message_id)
        if effect:
            self.effects.apply(message_id)
        timing = {}
        with self._lock:
            if with_inbox and message_id not in self.inbox_handled:
                self.inbox_handled.append(message_id)
            if message_id not in self.processed_ids:
                self.processed_ids.add(message_id)
                timing["end_to_end_ms"] = round((time.perf_counter() - self.ledger.sent_at[message_id]) * 1000.0, 3)
        if "body" in message.payload:
            extra["planned"] = False  # published by hand: not in the run's plan
        if not effect:
            extra["suppressed"] = "already in the inbox: the effect was applied by an earlier delivery"
        ctx.emit("process", actor, message_id, d.attempt, d.duplicate, effect=effect,
                 applied=self.effects.applied[message_id], idempotent=with_inbox, **common, **extra,
                 **timing)
        self.ledger.handled(consumer.name, message_id)
        reason = self.crashes.decide(consumer.name)
        if reason:
            self._crash(consumer, reason)
        message.ack()
        self.ledger.acked(QUEUE, message_id, consumer.name)
        ctx.emit("ack", actor, message_id, d.attempt, d.duplicate, delivery_tag=info.get("delivery_tag"), **common)
        with self._lock:
            self.acked_ids.add(message_id)
        self._check_acked()

    def _check_acked(self) -> None:
        with self._lock:
            if len(self.acked_ids) >= self.p["messages"] + len(self.hand_ids):
                self.all_acked.set()
            else:
                self.all_acked.clear()  # a message published by hand after all others were acked

    def _crash(self, consumer: Any, reason: str) -> None:
        """Record the crash and what the broker will requeue, then die before the ack."""
        held = self.ledger.crashed(consumer.name)
        actor = f"consumer:{consumer.name}"
        self.crash_log.append({"consumer": consumer.name, "reason": reason, "unacked": [h.message_id for h in held],
                               "t_ms": round(self.ctx.elapsed_ms(), 3)})
        unacked = [h.message_id for h in held]
        # message_ids: every message this crash will bring back (the inspector links them to it).
        seq = self.ctx.emit("crash", actor, held[-1].message_id if held else "", consumer=consumer.name, queue=QUEUE,
                            reason=f"crashed before ack ({reason}); its connection was dropped without closing the "
                            "channel", unacked=unacked, message_ids=unacked, restart_in_ms=self.p["restart_ms"])
        for h in held:
            self.ledger.deliveries.caused_by(h.queue, h.message_id, seq)
            self.ctx.emit("requeue", f"queue:{QUEUE}", h.message_id, queue=QUEUE, consumer=consumer.name,
                          reason=f"consumer:{consumer.name} died holding it unacked; the broker requeues it",
                          cause_seq=seq)
        self.down.add(consumer.name)
        consumer.crash(reason)

    def _drain_timeout(self) -> float:
        per_message = self.p["work_ms"] / 1000.0 + self.p["restart_ms"] / 1000.0 * self.p["crash_probability"]
        messages = self.p["messages"] + len(self.hand_ids)
        return 20.0 + messages * per_message / self.p["consumers"] + self.p["restart_ms"] / 1000.0

    # -- publishing --------------------------------------------------------------------

    def _publish_all(self, conn: Any) -> None:
        from kombu import Producer

        producer = Producer(conn.channel(), exchange=self.topology.exchange, on_return=self._on_return)
        pacer = self.ctx.pacer(self.p["rate"])
        for _ in range(self.p["messages"]):
            pacer.wait()
            self._publish_one(producer)

    def _on_return(self, exc: Any, *_: Any) -> None:
        self.returned.append(str(exc))

    def _publish_one(self, producer: Any, body: str | None = None) -> str:
        """The next m-N, confirmed by the broker, then recorded; returns its id."""
        self.published += 1
        n = self.published
        message_id = f"m{n}"
        where = {"exchange": EXCHANGE, "exchange_type": EXCHANGE_TYPE, "routing_key": KEY}
        payload: dict[str, Any] = {"id": message_id, "n": n}
        hand: dict[str, Any] = {}
        if body is not None:
            payload["body"], hand = body, {"by_hand": True}
        started = self.ledger.sent(message_id, (QUEUE,))
        producer.publish(payload, routing_key=KEY, mandatory=True, delivery_mode=1,
                         serializer="json", retry=False, message_id=message_id)
        if self.returned:
            raise RuntimeError(f"the broker returned {message_id} ({self.returned[-1]}): the work queue is gone")
        # Recorded once the confirm is back (as in amqp-routing); consumers wait for it.
        self.ctx.emit("publish", PRODUCER, message_id, mandatory=True, confirmed=True,
                      perceived_ms=round((time.perf_counter() - started) * 1000.0, 3), **where, **hand)
        self.ctx.emit("route", f"exchange:{EXCHANGE}", message_id, binding=KEY, binding_index=0, queue=QUEUE,
                      enqueued=True, **where)
        self.ledger.announced(message_id)
        return message_id

    # -- the result ---------------------------------------------------------------------

    def _result(self, broker_ready: int) -> dict[str, Any]:
        counts = self.ledger.snapshot().get(QUEUE, {})
        with self._lock:
            processed = len(self.processed_ids)
            lost = self.p["messages"] + len(self.hand_ids) - processed
        return {
            **self.topology.describe(),
            "queue_counts": {QUEUE: {**counts, "consumers": self.p["consumers"], "broker_ready": broker_ready,
                                     "agrees": counts.get("ready") == broker_ready}},
            "counts_agree": counts.get("ready") == broker_ready,
            "crashes": self.crash_log,
            "side_effects": self.effects.summary(),
            "idempotent": self.idempotent,
            "inbox": {"on": self.idempotent, "toggles": self.inbox_toggles,
                      "handled_with_inbox": list(self.inbox_handled)},
            "published_by_hand": list(self.hand_ids),
            "distinct_processed": processed,
            "lost": lost,
        }


class SideEffects:
    """What handling a message does to the world: here, a counter per message id."""

    def __init__(self) -> None:
        self.applied: Counter[str] = Counter()
        self._lock = threading.Lock()

    def apply(self, message_id: str) -> None:
        with self._lock:
            self.applied[message_id] += 1

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self.applied.values()),
                "distinct": len(self.applied),
                "repeated": {mid: n for mid, n in sorted(self.applied.items()) if n > 1},
            }


class CrashPlan:
    """When consumers crash: the crash_at-th message of work/1, a probability, or the button."""

    def __init__(self, crash_at: int, probability: float, seed: int) -> None:
        self.crash_at = crash_at
        self.probability = probability
        self._random = random.Random(seed)
        self._handled: Counter[str] = Counter()
        self._armed: list[str] = []  # consumer names, "" = whichever handles a message next
        self._lock = threading.Lock()
        self.crash_at_done = False

    def arm(self, target: str) -> None:
        with self._lock:
            self._armed.append(target.removeprefix("consumer:"))

    def decide(self, consumer: str) -> str:
        """After handling a message: the reason to crash now, or ''."""
        with self._lock:
            self._handled[consumer] += 1
            for i, target in enumerate(self._armed):
                if target in ("", consumer):
                    del self._armed[i]
                    return "the Crash consumer button"
            if (self.crash_at and not self.crash_at_done and consumer == f"{QUEUE}/1"
                    and self._handled[consumer] >= self.crash_at):
                self.crash_at_done = True
                return f"crash_at={self.crash_at}: it had handled {self.crash_at} messages"
            if self.probability and self._random.random() < self.probability:
                return f"crash_probability={self.probability:g}"
        return ""


def _close_thread_db() -> None:
    """Close the calling thread's database connection (consumers use the inbox from their own)."""
    from django.db import connection

    connection.close()
