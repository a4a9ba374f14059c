"""``amqp-routing``: a publisher, an exchange, bindings, queues and push or pull consumers (lesson 5).

The publisher knows only the exchange and a routing key (or headers). The broker routes a
copy to each queue with a matching binding; a message no binding matches is returned to
the publisher (``mandatory``), not silently dropped. Every run gets its own exchange and
queues (``run<id>.*``) and removes them at the end, after reading each queue's ready count
from the broker to check the dashboard's own.

Events, per message: ``publish`` (producer; recorded when the broker's confirm is back,
with ``perceived_ms``, the time the publisher waited for it) → one ``route`` per matching
binding (``exchange:orders``, attrs ``binding`` and ``queue``; ``enqueued`` is false when an
earlier binding already put a copy in that queue) → per queue ``deliver`` / ``process``
(``end_to_end_ms``) / ``ack`` at ``consumer:<queue>/<n>``. A consumer that gets its copy
before the publisher has recorded the publish waits for it, so the log stays causal. An
unroutable message gets one ``route`` with ``unroutable: true``, ``returned`` (did the
broker hand it back) and ``reason``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ..amqp import spec as routing
from ..amqp.ledger import Ledger
from ..amqp.workflow import AmqpWorkflow
from ..params import Param, choice_param, float_param, int_param

PRODUCER = "producer"


class AmqpRouting(AmqpWorkflow):
    slug = "amqp-routing"
    title = "AMQP exchanges, bindings and queues"
    pattern = "async"
    lesson = (
        "The publisher only knows the exchange. The exchange routes each message through its bindings to "
        "queues: direct by exact key, topic by pattern (* one word, # zero or more), fanout to every queue, "
        "headers by matching header values (x-match all or any). A message no binding matches is returned "
        "to the publisher (mandatory). Consumers either get messages pushed (basic.consume, at most "
        "'prefetch' unacked at a time) or pull them one by one (basic.get). Flexible routing costs a little "
        "speed. (Headers exchanges need RabbitMQ: kombu's in-process memory transport has none.)"
    )
    params = {
        "exchange_type": choice_param("topic", routing.EXCHANGE_TYPES, "Exchange type", label="Exchange type"),
        "bindings": Param(
            "json", [], "Bindings: a list of {queue, key} (direct, topic, fanout) or {queue, x_match: all|any, "
            "headers: {...}} (headers). Empty: the example for the chosen exchange type.",
            check=routing.check_list, label="Bindings", editor="amqp-bindings",
            examples={"by": "exchange_type", "values": {t: routing.PRESETS[t]["bindings"] for t in routing.EXCHANGE_TYPES}}),
        "keys": Param(
            "json", [], "Messages' routing keys (or header objects for headers), used in turn. Empty: the example "
            "for the chosen exchange type.", check=routing.check_list, label="Routing keys / headers"),
        "messages": int_param(12, 1, 20000, "How many messages to publish"),
        "rate": float_param(2.0, 0.0, 5000.0, "Messages per second (0 = as fast as possible)"),
        "consumers": int_param(1, 0, 4, "Consumers per queue (0 = nobody consumes: messages stay ready)"),
        "consumers_by_queue": Param("json", {}, 'Per-queue exceptions, e.g. {"audit": 0}', label="Consumers by queue"),
        "consumer_mode": choice_param("push", ("push", "pull"), "push: basic.consume; pull: basic.get in a loop"),
        "prefetch": int_param(1, 0, 1000, "Push only: unacked messages the broker may send a consumer ahead (0 = no limit)"),
        "work_ms": int_param(40, 0, 5000, "Time a consumer spends on each message"),
    }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        cleaned, errors = super().validate(given)
        if errors:
            return cleaned, errors
        from ..transports import get_broker

        return cleaned, routing.complete(cleaned, get_broker("amqp").exchange_types)

    def expected(self, params: dict[str, Any]) -> int:
        return routing.RoutingSpec(params).expected_deliveries()

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        from ..amqp.resources import RunTopology

        amqp = self.ctx.broker("amqp")
        if self.p["exchange_type"] not in amqp.exchange_types:
            raise ValueError(routing.complete(dict(self.p), amqp.exchange_types)["exchange_type"])
        self.spec = routing.RoutingSpec(self.p)
        self.exchange_actor = f"exchange:{self.spec.exchange}"
        self.ledger = Ledger()
        self.expected_copies = self.spec.expected_deliveries()
        self.plan = self.spec.plan()
        # The copies ``expected`` counts: one a broker routes elsewhere is processed but unplanned.
        self.planned_copies = {(q, m.message_id) for m in self.plan for q in m.queues}
        # Position in the run's binding list (the panel draws one edge per binding); the
        # first of two identical bindings stands for both, as the broker keeps only one.
        self.binding_index = {}
        for i, b in enumerate(self.spec.bindings):
            self.binding_index.setdefault(b, i)
        self.all_processed = threading.Event()
        self.work_s = self.p["work_ms"] / 1000.0
        self.returned: dict[str, str] = {}
        self.declare(amqp, RunTopology(self.ctx.namespace, self.spec.exchange, self.spec.exchange_type,
                                       self.spec.bindings))

    def start_consumers(self) -> None:
        for queue, count in self.spec.consumers.items():
            for n in range(1, count + 1):
                self.consume(queue, f"{queue}/{n}", self._handle, mode=self.p["consumer_mode"],
                             prefetch=self.p["prefetch"])
        self.consuming()

    def produce(self) -> None:
        started = time.perf_counter()
        self.disagreements = self._publish_all(self.publisher)
        self.published_s = time.perf_counter() - started

    def settle(self) -> None:
        if self.expected_copies == 0:
            self.all_processed.set()
        try:
            self.ctx.wait_for(self.all_processed, self._drain_timeout(), "every routed copy to be processed")
        except TimeoutError:
            pass  # what is missing is reported as lost
        self.stop_consumers()

    def report(self) -> dict[str, Any]:
        return self._result(self.topology.ready_counts(self.channel), self.disagreements, self.published_s)

    # -- consumers ----------------------------------------------------------------------

    def _handle(self, consumer: Any, message: Any) -> None:
        # Runs for every copy on the consumers' threads, next to the publisher waiting for
        # its confirm: kept lean (one ledger call per step, attrs the views need).
        emit, queue, name = self.ctx.emit, consumer.logical, consumer.name
        message_id = message_id_of(message)
        info = message.delivery_info
        tag = info.get("delivery_tag")
        redelivered = bool(info.get("redelivered"))
        actor = f"consumer:{name}"
        self.ledger.wait_announced(message_id)
        d = self.ledger.delivered(queue, message_id, name, redelivered)
        extra = {"reason": d.reason} if d.duplicate else {}
        emit("deliver", actor, message_id, d.attempt, d.duplicate, queue=queue, consumer=name, redelivered=redelivered,
             delivery_tag=tag, mode=consumer.mode, **extra)
        if self.work_s:
            consumer.stopping.wait(self.work_s)
        if not d.duplicate:
            extra["end_to_end_ms"] = round((time.perf_counter() - self.ledger.sent_at[message_id]) * 1000.0, 3)
            if (queue, message_id) not in self.planned_copies:
                extra["planned"] = False
        emit("process", actor, message_id, d.attempt, d.duplicate, queue=queue, consumer=name, effect=True, **extra)
        message.ack()
        first = self.ledger.acked(queue, message_id, name)
        emit("ack", actor, message_id, d.attempt, d.duplicate, queue=queue, consumer=name, delivery_tag=tag)
        if first and self.ledger.first_acks >= self.expected_copies:
            self.all_processed.set()

    def _drain_timeout(self) -> float:
        per_queue = max(self.spec.messages * self.p["work_ms"] / 1000.0, 0.0)
        return 15.0 + per_queue

    # -- publishing --------------------------------------------------------------------

    def _publish_all(self, conn: Any) -> list[str]:
        from kombu import Producer

        producer = Producer(conn.channel(), exchange=self.topology.exchange, on_return=self._on_return)
        pacer = self.ctx.pacer(self.p["rate"])
        disagreements: list[str] = []
        emit, exchange_actor, ledger = self.ctx.emit, self.exchange_actor, self.ledger
        for m, where, routes in self._prepared():
            pacer.wait()
            started = ledger.sent(m.message_id, m.queues)
            producer.publish({"id": m.message_id, "n": m.index + 1}, routing_key=m.routing_key, headers=m.headers,
                             mandatory=True, delivery_mode=1, serializer="json", retry=False, message_id=m.message_id)
            # The confirm is back: the broker has routed the message (and handed back an
            # unroutable one). Which binding matched is the rules' answer (a broker tells a
            # consumer only the queue); the tests check it against what consumers receive.
            perceived_ms = round((time.perf_counter() - started) * 1000.0, 3)
            returned = self.returned.pop(m.message_id, None)
            emit("publish", PRODUCER, m.message_id, mandatory=True, confirmed=True, perceived_ms=perceived_ms, **where)
            for attrs in routes:
                emit("route", exchange_actor, m.message_id, **attrs)
            ledger.announced(m.message_id)
            if m.queues:
                if returned is not None:
                    disagreements.append(f"{m.message_id}: the broker returned it ({returned}) but bindings match")
                    emit("error", exchange_actor, m.message_id, reason=disagreements[-1], **where)
            else:
                emit("route", exchange_actor, m.message_id, unroutable=True, returned=returned is not None,
                     reason=("no binding matched; the broker returned it to the publisher (mandatory, "
                             f"{returned})") if returned else "no binding matched", **where)
                if returned is None:
                    disagreements.append(f"{m.message_id}: no binding matches but the broker did not return it")
                    emit("error", exchange_actor, m.message_id, reason=disagreements[-1], **where)
        return disagreements

    def _prepared(self) -> Any:
        """Each message with its publish and route attrs, built before the clock starts mattering."""
        etype, exchange = self.spec.exchange_type, self.spec.exchange
        labels = {b: b.label(etype) for b in self.spec.bindings}
        prepared = []
        for m in self.plan:
            where = {"exchange": exchange, "exchange_type": etype, "routing_key": m.routing_key}
            if m.headers is not None:
                where["headers"] = m.headers
            seen: set[str] = set()
            routes = []
            for b in m.bindings:
                routes.append({"binding": labels[b], "binding_index": self.binding_index[b], "queue": b.queue,
                               "enqueued": b.queue not in seen, **where})
                seen.add(b.queue)
            prepared.append((m, where, routes))
        return prepared

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        # py-amqp hands back its own Message (raw body), the embedded broker kombu's.
        body = getattr(message, "body", b"")
        try:
            message_id = json.loads(body.decode() if isinstance(body, bytes) else body)["id"]
        except (ValueError, KeyError, TypeError, AttributeError):
            message_id = "?"
        self.returned[message_id] = str(getattr(exc, "reply_text", "") or exc)

    # -- the result ---------------------------------------------------------------------

    def _result(self, broker_ready: dict[str, int], disagreements: list[str], published_s: float) -> dict[str, Any]:
        counts = self.ledger.snapshot()
        queues = {}
        for name in self.spec.queues:
            mine = counts.get(name, {"routed": 0, "delivered": 0, "acked": 0, "requeued": 0, "duplicates": 0,
                                     "ready": 0, "unacked": 0})
            queues[name] = {**mine, "consumers": self.spec.consumers[name], "broker_ready": broker_ready.get(name),
                            "agrees": mine["ready"] == broker_ready.get(name)}
        lost = max(0, self.expected_copies - self.ledger.first_acks)
        ledger = self.ledger
        span = (ledger.last_ack_at - min(ledger.sent_at.values())) if ledger.sent_at and ledger.last_ack_at else 0.0
        return {
            **self.topology.describe(),
            "consumer_mode": self.p["consumer_mode"],
            "queue_counts": queues,
            "counts_agree": all(q["agrees"] for q in queues.values()),
            "expected_deliveries": self.expected_copies,
            "processed_first": self.ledger.first_acks,
            "unroutable": sum(1 for m in self.plan if not m.queues),
            "disagreements": disagreements,
            "lost": lost,
            "publish_s": round(published_s, 3),
            "throughput_per_s": round(self.ledger.first_acks / span, 1) if span > 0 else None,
        }


def message_id_of(message: Any) -> str:
    """The id travels as the AMQP message_id property, so a consumer need not decode the body."""
    return message.properties.get("message_id") or message.payload["id"]
