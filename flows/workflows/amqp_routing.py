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

from ..amqp import hands_on
from ..amqp import spec as routing
from ..amqp.hands_on import BIND_PARAMS, PUBLISH_PARAMS, SLOW_PARAMS, LiveBindings
from ..amqp.ledger import Ledger
from ..amqp.routing_rules import Binding, matching_bindings
from ..amqp.workflow import AmqpWorkflow
from ..params import Param, choice_param, float_param, int_param
from ..registry import Reply, action

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
        "messages": int_param(12, 0, 20000, "How many messages to publish (0: none, for an interactive run)"),
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

        self.spec = routing.RoutingSpec(self.p)
        # Driven by hand: the bindings now, messages published by hand, consumers slowed or
        # down. Set first: actions are checked against them from the moment the run exists.
        self.bindings_now = LiveBindings(self.spec.bindings)
        self.hand_published = self.hand_unroutable = 0
        self.slow_s: dict[str, float] = {}
        self.down: set[str] = set()
        self.crashed_holding: dict[str, list[str]] = {}  # written by a dying consumer's thread
        self.consuming_at_end: dict[str, int] = {}
        self.numbered = dict(self.spec.consumers)  # the last consumer number used per queue
        amqp = self.ctx.broker("amqp")
        if self.p["exchange_type"] not in amqp.exchange_types:
            raise ValueError(routing.complete(dict(self.p), amqp.exchange_types)["exchange_type"])
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
        self.disagreements: list[str] = []
        self.published_s = 0.0
        self.declare(amqp, RunTopology(self.ctx.namespace, self.spec.exchange, self.spec.exchange_type,
                                       self.spec.bindings))
        from kombu import Producer

        self.producer = Producer(self.publisher.channel(), exchange=self.topology.exchange, on_return=self._on_return)

    def start_consumers(self) -> None:
        for queue, count in self.spec.consumers.items():
            for n in range(1, count + 1):
                self.consume(queue, f"{queue}/{n}", self._handle, mode=self.p["consumer_mode"],
                             prefetch=self.p["prefetch"])
        self.consuming()

    def produce(self) -> None:
        started = time.perf_counter()
        self._publish_all()
        self.published_s = time.perf_counter() - started

    def settle(self) -> None:
        if self.p["interactive"]:
            # Hand-published copies are not in the plan: wait until every queue somebody
            # consumes is empty and nothing is held unacked.
            try:
                self.ctx.wait_until(self._drained, self._drain_timeout(), "every routed copy to be processed")
            except TimeoutError:
                pass  # what is left stays ready in its queue, counted by the broker and the ledger alike
            for consumer in self._live_consumers():
                self.consuming_at_end[consumer.logical] = self.consuming_at_end.get(consumer.logical, 0) + 1
            self.stop_consumers()
            return
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
        # Cut short by stop(); a consumer crashed by hand dies here, before its ack.
        consumer.pause(self.work_s + self.slow_s.get(name, 0.0))
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
        if self.p["interactive"]:
            waiting = sum(c["ready"] + c["unacked"] for c in self.ledger.snapshot().values())
            return min(15.0 + waiting * (self.work_s + max(self.slow_s.values(), default=0.0)), 60.0)
        per_queue = max(self.spec.messages * self.p["work_ms"] / 1000.0, 0.0)
        return 15.0 + per_queue

    def _drained(self) -> bool:
        consumed = {c.logical for c in self._live_consumers()}
        return all(c["unacked"] == 0 and (c["ready"] == 0 or queue not in consumed)
                   for queue, c in self.ledger.snapshot().items())

    # -- publishing --------------------------------------------------------------------

    def _publish_all(self) -> None:
        pacer = self.ctx.pacer(self.p["rate"])
        for m, where, routes in self._prepared():
            pacer.wait()
            self._send(m, where, routes, {"id": m.message_id, "n": m.index + 1})

    def _send(self, m: routing.Message, where: dict[str, Any], routes: list[dict[str, Any]],
              body: dict[str, Any]) -> bool:
        """Publish one message through the exchange (mandatory, confirmed) and record what
        happened; True when the broker handed it back unroutable."""
        emit, exchange_actor, ledger = self.ctx.emit, self.exchange_actor, self.ledger
        started = ledger.sent(m.message_id, m.queues)
        self.producer.publish(body, routing_key=m.routing_key, headers=m.headers, mandatory=True, delivery_mode=1,
                              serializer="json", retry=False, message_id=m.message_id)
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
                self.disagreements.append(f"{m.message_id}: the broker returned it ({returned}) but bindings match")
                emit("error", exchange_actor, m.message_id, reason=self.disagreements[-1], **where)
        else:
            emit("route", exchange_actor, m.message_id, unroutable=True, returned=returned is not None,
                 reason=("no binding matched; the broker returned it to the publisher (mandatory, "
                         f"{returned})") if returned else "no binding matched", **where)
            if returned is None:
                self.disagreements.append(f"{m.message_id}: no binding matches but the broker did not return it")
                emit("error", exchange_actor, m.message_id, reason=self.disagreements[-1], **where)
        return returned is not None

    def _prepared(self) -> Any:
        """Each message with its publish and route attrs, built before the clock starts mattering."""
        etype, exchange = self.spec.exchange_type, self.spec.exchange
        labels = {b: b.label(etype) for b in self.spec.bindings}
        return [(m, *self._addressed(m, etype, exchange, labels, self.binding_index)) for m in self.plan]

    @staticmethod
    def _addressed(m: routing.Message, etype: str, exchange: str, labels: dict[Binding, str],
                   index: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A message's publish attrs and one route's attrs per matching binding."""
        where = {"exchange": exchange, "exchange_type": etype, "routing_key": m.routing_key}
        if m.headers is not None:
            where["headers"] = m.headers
        seen: set[str] = set()
        routes = []
        for b in m.bindings:
            routes.append({"binding": labels[b], "binding_index": index[b], "queue": b.queue,
                           "enqueued": b.queue not in seen, **where})
            seen.add(b.queue)
        return where, routes

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        # py-amqp hands back its own Message (raw body), the embedded broker kombu's.
        body = getattr(message, "body", b"")
        try:
            message_id = json.loads(body.decode() if isinstance(body, bytes) else body)["id"]
        except (ValueError, KeyError, TypeError, AttributeError):
            message_id = "?"
        self.returned[message_id] = str(getattr(exc, "reply_text", "") or exc)

    # -- by hand (interactive runs) ----------------------------------------------------

    @action("Publish", hands_on=True, params=PUBLISH_PARAMS)
    def on_publish(self, target: str, routing_key: str, headers: dict[str, Any], body: str) -> Reply:
        """One message through the exchange, routed by the bindings as they are now."""
        etype, exchange = self.spec.exchange_type, self.spec.exchange
        self.hand_published += 1
        n = self.spec.messages + self.hand_published
        given = {str(k): str(v) for k, v in headers.items()} if etype == "headers" else None
        matched = tuple(matching_bindings(etype, self.bindings_now.now(), routing_key, given))
        m = routing.Message(n - 1, f"m{n}", routing_key, given, matched, tuple(dict.fromkeys(b.queue for b in matched)))
        labels = {b: b.label(etype) for b in matched}
        where, routes = self._addressed(m, etype, exchange, labels, {b: self.bindings_now.index_of(b) for b in matched})
        payload: dict[str, Any] = {"id": m.message_id, "n": n, "by_hand": True}
        if body:
            payload["body"] = body
        returned = self._send(m, where, routes, payload)
        if not m.queues:
            self.hand_unroutable += 1
            said = "the broker returned it" if returned else "yet the broker did not return it"
            return {"result": f"{m.message_id} unroutable: no binding matched; {said}", "message_id": m.message_id}
        idle = [q for q in m.queues if not any(c.logical == q for c in self._live_consumers())]
        waits = f" (nobody consumes {', '.join(idle)}: it waits there)" if idle else ""
        return {"result": f"{m.message_id} routed to {', '.join(m.queues)}{waits}", "message_id": m.message_id}

    @action("Bind", hands_on=True, params=BIND_PARAMS)
    def on_bind(self, target: str, **params: Any) -> str:
        b, _ = hands_on.binding_of(self.spec.exchange_type, params)
        assert b is not None  # check_action refused it otherwise
        self.topology.queues[b.queue](self.channel).bind_to(self.topology.exchange, routing_key=b.key,
                                                            arguments=b.arguments(self.spec.exchange_type))
        index = self.bindings_now.add(b)
        return self._binding_changed("assign", b, index, "bound")

    @action("Unbind", hands_on=True, params=BIND_PARAMS)
    def on_unbind(self, target: str, **params: Any) -> str:
        b, _ = hands_on.binding_of(self.spec.exchange_type, params)
        assert b is not None
        self.topology.queues[b.queue](self.channel).unbind_from(self.topology.exchange, routing_key=b.key,
                                                                arguments=b.arguments(self.spec.exchange_type))
        index = self.bindings_now.remove(b)
        return self._binding_changed("revoke", b, index, "unbound")

    def _binding_changed(self, kind: str, b: Binding, index: int, done: str) -> str:
        etype, label = self.spec.exchange_type, b.label(self.spec.exchange_type)
        self.ctx.emit(kind, f"queue:{b.queue}", exchange=self.spec.exchange, binding=label,
                      binding_index=index, by_hand=True, **b.as_param(etype))
        return f"{done} {b.queue} {'to' if kind == 'assign' else 'from'} {self.spec.exchange} ({label})"

    @action("Add consumer", hands_on=True, params={"queue": hands_on.QUEUE_PARAM})
    def on_add_consumer(self, target: str, queue: str) -> str:
        self.numbered[queue] = self.numbered.get(queue, 0) + 1
        return self._start_consumer(queue, f"{queue}/{self.numbered[queue]}")

    @action("Remove consumer", hands_on=True, params={"queue": hands_on.QUEUE_PARAM})
    def on_remove_consumer(self, target: str, queue: str) -> str:
        consumer = [c for c in self._live_consumers() if c.logical == queue][-1]
        consumer.stop()
        self.ctx.wait_until(lambda: not consumer.alive, 5.0, f"{consumer.name} to stop", tend=False)
        self.slow_s.pop(consumer.name, None)
        self.ctx.emit("revoke", f"consumer:{consumer.name}", queue=queue, consumer=consumer.name, by_hand=True)
        return f"consumer:{consumer.name} stopped after its message in hand; {queue} keeps the rest"

    @action("Slow down", target="consumer", hands_on=True, params=SLOW_PARAMS)
    def on_slow(self, target: str, delay_ms: int) -> str:
        name = target.removeprefix("consumer:")
        self.slow_s[name] = delay_ms / 1000.0
        return f"consumer:{name} now spends {self.p['work_ms'] + delay_ms} ms on each message"

    @action("Crash", target="consumer", hands_on=True)
    def on_crash(self, target: str) -> str:
        name = target.removeprefix("consumer:")
        consumer = next(c for c in self._live_consumers() if c.name == name)
        consumer.kill(self._killed)
        self.ctx.wait_until(lambda: not consumer.alive, 5.0, f"{name} to die", tend=False)
        self.down.add(name)
        held = self.crashed_holding.pop(name, [])
        kept = f"; the broker requeues what it held unacked ({', '.join(held)})" if held else ""
        return f"consumer:{name} crashed{kept}"

    @action("Restart", target="consumer", hands_on=True)
    def on_restart(self, target: str) -> str:
        name = target.removeprefix("consumer:")
        queue = next(c.logical for c in reversed(self.consumers) if c.name == name)
        self.down.discard(name)
        self.slow_s.pop(name, None)
        return self._start_consumer(queue, name, restarted=True)

    def _start_consumer(self, queue: str, name: str, **attrs: Any) -> str:
        self.consume(queue, name, self._handle, mode=self.p["consumer_mode"], prefetch=self.p["prefetch"])
        consumer = self.consumers[-1]
        self.ctx.wait_until(consumer.ready.is_set, 10.0, f"{name} to subscribe", tend=False)
        if consumer.error is not None:
            return f"consumer:{name} could not start: {consumer.error}"
        self.ctx.emit("assign", f"consumer:{name}", queue=queue, consumer=name, mode=consumer.mode,
                      prefetch=consumer.prefetch if consumer.mode == "push" else None, by_hand=True, **attrs)
        return f"consumer:{name} consumes {queue}"

    def _killed(self, consumer: Any) -> None:
        # On the dying consumer's thread, before its connection drops: what it held goes back.
        held = self.ledger.crashed(consumer.name)
        ids = [h.message_id for h in held]
        self.crashed_holding = {**self.crashed_holding, consumer.name: ids}
        self.ctx.emit("crash", f"consumer:{consumer.name}", ids[-1] if ids else "", consumer=consumer.name,
                      queue=consumer.logical, unacked=ids, by_hand=True,
                      reason="crashed by hand; its connection was dropped without closing the channel")

    def dispatch(self, name: str, target: str, params: dict[str, Any] | None = None) -> Reply:
        # Checked on the web thread when asked; the run may have changed since (two quick
        # binds of one key, a consumer that died meanwhile): checked again, on the run thread.
        if name in self.actions:
            refusal = self.refusal(name, target)
            errors = {"target": refusal} if refusal else self.check_action(name, target, params or {})
            if errors:
                return f"{name} not done: {'; '.join(errors.values())}"
        return super().dispatch(name, target, params)

    def _live_consumers(self) -> list[Any]:
        return [c for c in list(self.consumers) if c.alive and not c.stopping.is_set() and not c.killed.is_set()]

    def targets(self, action: str) -> list[str]:
        if action == "restart":
            return [f"consumer:{name}" for name in sorted(getattr(self, "down", ()))]
        return [f"consumer:{c.name}" for c in self._live_consumers()]

    def check_action(self, name: str, target: str, params: dict[str, Any]) -> dict[str, str]:
        if not hasattr(self, "bindings_now"):
            return {"action": "the run is still starting; try again in a moment"}
        etype = self.spec.exchange_type
        if name == "publish":
            problem = hands_on.routing_key_problem(etype, params["routing_key"])
            if problem:
                return {"routing_key": problem}
            problem = hands_on.headers_problem(params["headers"])
            return {"headers": problem} if problem else {}
        if "queue" not in params:
            return {}
        queue = params["queue"]
        known = ", ".join(self.spec.queues)
        if not queue:
            return {"queue": f"name the queue; queues: {known}"}
        if queue not in self.spec.consumers:
            return {"queue": f"no queue named {queue!r} in this run; queues: {known}"}
        consuming = sum(1 for c in self._live_consumers() if c.logical == queue)
        if name == "add_consumer" and consuming >= hands_on.MAX_CONSUMERS_PER_QUEUE:
            return {"queue": f"{queue} has {consuming} consumers already, the most a queue takes here"}
        if name == "remove_consumer" and not consuming:
            return {"queue": f"nobody consumes {queue} right now"}
        if name in ("bind", "unbind"):
            return self._binding_problem(name, etype, params)
        return {}

    def _binding_problem(self, name: str, etype: str, params: dict[str, Any]) -> dict[str, str]:
        b, errors = hands_on.binding_of(etype, params)
        if errors or b is None:
            return errors
        field, now = hands_on.key_field(etype), self.bindings_now.now()
        if name == "bind" and b in now:
            return {field: f"{b.queue} is bound with {b.label(etype)} already"}
        if name == "bind" and len(now) >= hands_on.MAX_BINDINGS:
            return {field: f"at most {hands_on.MAX_BINDINGS} bindings in a run"}
        if name == "unbind" and b not in now:
            have = ", ".join(o.label(etype) for o in now if o.queue == b.queue) or "none"
            return {field: f"{b.queue} has no binding {b.label(etype)}; its bindings: {have}"}
        return {}

    def menu(self) -> dict[str, dict[str, Any]]:
        """The run's actions with only the params its exchange type uses (headers or keys),
        and its queues to choose from."""
        offered = super().menu()
        p = getattr(self, "p", {})
        headers = p.get("exchange_type") == "headers"
        unused = {"publish": ("routing_key",) if headers else ("headers",),
                  "bind": ("binding_key",) if headers else ("arguments",)}
        unused["unbind"] = unused["bind"]
        queues = list(dict.fromkeys(str(b["queue"]) for b in p.get("bindings", ())))
        for name, spec in offered.items():
            params = {k: v for k, v in spec["params"].items() if k not in unused.get(name, ())}
            if "queue" in params and queues:
                # The run's queues are known: offered as a choice (any other is refused anyway).
                params["queue"] = {**params["queue"], "type": "choice", "choices": queues, "default": queues[0]}
            offered[name] = {**spec, "params": params}
        return offered

    # -- the result ---------------------------------------------------------------------

    def _result(self, broker_ready: dict[str, int], disagreements: list[str], published_s: float) -> dict[str, Any]:
        counts = self.ledger.snapshot()
        queues = {}
        for name in self.spec.queues:
            mine = counts.get(name, {"routed": 0, "delivered": 0, "acked": 0, "requeued": 0, "duplicates": 0,
                                     "ready": 0, "unacked": 0})
            consumers = self.consuming_at_end.get(name, 0) if self.p["interactive"] else self.spec.consumers[name]
            queues[name] = {**mine, "consumers": consumers, "broker_ready": broker_ready.get(name),
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
            "unroutable": sum(1 for m in self.plan if not m.queues) + self.hand_unroutable,
            "published_by_hand": self.hand_published,
            "bindings_at_end": [{**b.as_param(self.spec.exchange_type), "label": b.label(self.spec.exchange_type)}
                                for b in self.bindings_now.now()],
            "disagreements": disagreements,
            "lost": lost,
            "publish_s": round(published_s, 3),
            "throughput_per_s": round(self.ledger.first_acks / span, 1) if span > 0 else None,
        }


def message_id_of(message: Any) -> str:
    """The id travels as the AMQP message_id property, so a consumer need not decode the body."""
    return message.properties.get("message_id") or message.payload["id"]
