"""``amqp-dead-letter``: poison messages, retries with backoff, and the dead-letter queue (lesson 7).

``poison`` of the ``messages`` orders carry a bad payload (an amount written in words) that
the consumer can never handle. What happens to them is ``on_failure``:

* ``dead-letter``: the consumer retries with a growing backoff, then gives up: after the
  ``max_attempts``-th failure it rejects the message without requeue and RabbitMQ routes
  it through the work queue's ``x-dead-letter-exchange`` to the DLQ, stamping ``x-death``.
* ``drop``: the same retries, but the work queue has no dead-letter exchange: the broker
  discards the rejected message. It is lost.
* ``requeue``: no retry queues, no limit: the consumer rejects with requeue, RabbitMQ puts
  the message back and delivers it again at once, forever. The run stops each loop after
  ``LOOP_CAP`` deliveries by holding the message unacked; it is still in the work queue at
  the end (the broker's ready count says so).

**Backoff: delayed-retry queues with a TTL, not a quorum queue's ``x-delivery-limit``.** A
failed attempt is published (confirmed) to ``retry-<n>``, whose ``x-message-ttl`` is
``retry_delay_ms × 2^(n-1)``, and then acked; when the TTL runs out RabbitMQ dead-letters
it (reason ``expired``) back to the work exchange. The consumer is free meanwhile and the
delay is the broker's. ``x-delivery-limit`` counts attempts on the broker too, but a quorum
queue returns a rejected message at once: the only way to wait would be to hold the
consumer (and its prefetch slot) for the whole delay, and the delays could not grow. The
last attempt is the one rejection the broker dead-letters, so each DLQ message's
``x-death`` reads back ``{queue: work, reason: rejected, count: 1}`` (and the last retry
queue's ``expired``); the attempts are the consumer's ``deliver`` events.

Kombu's in-process memory transport has no dead-lettering, no TTL and no ``x-death``, so
the workflow refuses to run on it (``needs_external``) rather than fake a DLQ.

Events: ``publish`` / ``route`` / ``deliver``; a success is ``process`` and ``ack``; a
failure is ``nack`` (``reason``, ``requeue``), then a ``retry`` at ``queue:retry-<n>``
(``attempt`` the one it schedules, ``delay_ms``), a ``route`` at ``exchange:orders`` when it
comes back (``from_queue``, ``waited_ms``, the broker's ``x_death``), and at the end a
``route`` at ``exchange:dlx`` with ``dead_letter: true``, ``reason`` and ``x_death`` read
from the DLQ (``counts.dead_lettered``), then ``enqueue`` at ``queue:dlq``. Interactive
runs offer **Replay from DLQ**: the consumer is fixed (it now reads amounts in words) and
every message in the DLQ is published back to the work queue, where it succeeds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from ..amqp.dead_letter import DLQ, DLX, EXCHANGE, KEY, WORK, DeadLetterTopology, retry_queue
from ..amqp.ledger import Ledger
from ..amqp.workflow import AmqpWorkflow
from ..params import choice_param, float_param, int_param
from ..registry import action

PRODUCER = "producer"
ON_FAILURE = ("dead-letter", "requeue", "drop")
LOOP_CAP = 20  # requeue mode: deliveries of one message before the run stops its loop
MAX_BACKOFF_MS = 60_000  # the retries of one message may wait this long in all
WORDS = {"twelve": 12}  # what a fixed consumer reads in a poison message's amount
PROCESSED, DEAD, DROPPED, LOOPING = "processed", "dead-lettered", "dropped", "looping"


class BadPayload(ValueError):
    """A message the consumer cannot handle however often it tries."""


class AmqpDeadLetter(AmqpWorkflow):
    slug = "amqp-dead-letter"
    title = "AMQP: poison messages, retries with backoff and the dead-letter queue"
    pattern = "async"
    lesson = (
        "A message that can never succeed (a poison message) must not be retried forever nor silently dropped. "
        "The consumer retries with a growing backoff (the message waits in a queue with a TTL, then comes back), "
        "and after max_attempts rejects it; RabbitMQ's dead-letter exchange routes it to a dead-letter queue, "
        "where its x-death header says where and why it died. Once the bug is fixed the DLQ can be replayed."
    )
    needs_external = ("kombu's in-process memory transport cannot dead-letter (no x-dead-letter-exchange, no "
                      "queue TTL, no x-death), and this workflow will not fake a DLQ")
    params = {
        "messages": int_param(10, 1, 1000, "How many orders to publish"),
        "poison": int_param(2, 0, 1000, "How many of them carry a bad payload that always fails (at most messages)"),
        "on_failure": choice_param(
            "dead-letter", ON_FAILURE,
            "dead-letter: retry with backoff, then RabbitMQ dead-letters it to the DLQ · requeue: no DLQ, the "
            "consumer requeues every failure and the broker delivers it again at once, forever (the run stops "
            f"each loop after {LOOP_CAP}) · drop: retry with backoff, then rejected without a DLQ: the broker "
            "discards it (lost)", label="On failure"),
        "max_attempts": int_param(3, 1, 8, "Deliveries of a message before the consumer gives up (dead-letter, drop)"),
        "retry_delay_ms": int_param(500, 10, 10_000, "Backoff before the first retry; it doubles at every retry "
                                                     "(a TTL queue per retry)"),
        "rate": float_param(2.0, 0.0, 1000.0, "Orders per second (0 = as fast as possible)"),
        "consumers": int_param(1, 1, 4, "Consumers on the work queue"),
        "work_ms": int_param(100, 0, 5000, "Time a consumer spends on each delivery"),
    }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        cleaned, errors = super().validate(given)
        if "messages" in cleaned and "poison" in cleaned and cleaned["poison"] > cleaned["messages"]:
            errors["poison"] = f"at most messages ({cleaned['messages']}): {cleaned['poison']} of them cannot be poison"
        if "retry_delay_ms" in cleaned and "max_attempts" in cleaned and cleaned.get("on_failure") != "requeue":
            total = sum(backoff_ms(cleaned["retry_delay_ms"], cleaned["max_attempts"]))
            if total > MAX_BACKOFF_MS:
                errors["retry_delay_ms"] = (f"the retries of one message would wait {total / 1000:g} s in all "
                                            f"(doubling from {cleaned['retry_delay_ms']} ms over "
                                            f"{cleaned['max_attempts'] - 1} retries); at most {MAX_BACKOFF_MS // 1000} s")
        return cleaned, errors

    def expected(self, params: dict[str, Any]) -> int:
        return params["messages"] - params["poison"]

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        p = self.p
        self.mode = p["on_failure"]
        retries = p["max_attempts"] - 1 if self.mode != "requeue" else 0
        self.delays_ms = backoff_ms(p["retry_delay_ms"], retries + 1)
        self.poison_ids = poison_ids(p["messages"], p["poison"])
        self.ledger = Ledger()
        self.outcome: dict[str, str] = {}
        self.retry_sent: dict[str, tuple[int, float, int]] = {}  # message → (retry number, sent at, delay)
        self.waited_ms: dict[str, list[float]] = {}
        self.dlq: dict[str, dict[str, Any]] = {}  # what the watcher read, in arrival order
        self.replayed: list[str] = []
        self.fixed = False
        self.published_ids: list[str] = []
        self.settled = threading.Event()
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()  # one confirming channel, used by every thread
        self.watcher: Any = None
        self.declare(self.ctx.broker("amqp"),
                     DeadLetterTopology(self.ctx.namespace, self.delays_ms, self.mode == "dead-letter"))
        from kombu import Producer

        self.producer = Producer(self.publisher.channel())

    def start_consumers(self) -> None:
        if self.mode == "dead-letter":
            from ..amqp.dlq_watcher import DlqWatcher

            self.watcher = DlqWatcher(self.amqp, self.topology.queues[DLQ], self._dead_lettered)
            self.watcher.start()
            self.ctx.wait_until(self.watcher.ready.is_set, 10.0, "the DLQ watcher to subscribe")
            if self.watcher.error:
                raise RuntimeError(f"the DLQ watcher could not start: {self.watcher.error}")
        # A message whose loop was stopped stays held (unacked): one prefetch slot each, one to work with.
        prefetch = self.p["poison"] + 1 if self.mode == "requeue" else 1
        for n in range(1, self.p["consumers"] + 1):
            self.consume(WORK, f"{WORK}/{n}", self._handle, prefetch=prefetch)
        self.consuming()

    def produce(self) -> None:
        pacer = self.ctx.pacer(self.p["rate"])
        for n in range(1, self.p["messages"] + 1):
            pacer.wait()
            self._publish_order(n)

    def settle(self) -> None:
        self._check_settled()
        try:
            self.ctx.wait_for(self.settled, self._drain_timeout(), "every order to be processed, dead-lettered, "
                              "dropped or stopped looping")
        except TimeoutError:
            pass  # what has no outcome is reported as lost
        self.stop_consumers()
        if self.watcher is not None:
            self.watcher.stop()
            if self.watcher.error is not None:
                self.ctx.emit("error", f"queue:{DLQ}", queue=DLQ, reason=f"the DLQ watcher failed: {self.watcher.error}")

    def report(self) -> dict[str, Any]:
        with self._lock:
            held = {WORK: sum(1 for o in self.outcome.values() if o == LOOPING),
                    DLQ: len(self.dlq) - len(self.replayed)}
        # Closing a channel gives its unacked messages back; wait until the broker counts them ready.
        try:
            self.ctx.wait_until(lambda: self._broker_agrees(held), 5.0, "the broker to count the held messages again",
                                tend=False)
        except TimeoutError:
            pass  # reported: agrees is false
        return self._result(self.topology.ready_counts(self.channel), held)

    def teardown(self) -> None:
        if getattr(self, "watcher", None) is not None:  # setup may have failed before it existed
            self.watcher.stop()
        super().teardown()

    # -- hands on (interactive runs) ---------------------------------------------------

    @action("Replay from DLQ", hands_on=True)
    def on_replay(self, target: str) -> str:
        if self.watcher is None:
            return f"nothing to replay: with on_failure={self.mode} there is no DLQ"
        self.fixed = True  # the bug is fixed before the replay, or the messages would die again
        future = self.watcher.replay(self._replay_one)
        self.ctx.wait_until(future.done, 10.0, "the DLQ replay", tend=False)
        ids = future.result()
        if not ids:
            return "the consumer is fixed (it reads amounts written in words); the DLQ is empty, nothing to replay"
        return (f"the consumer is fixed (it reads amounts written in words); replayed {', '.join(ids)} from the DLQ "
                "to the work queue")

    def _replay_one(self, message: Any) -> None:
        """On the watcher's thread: publish a dead letter back to the work exchange, confirmed."""
        message_id = message_id_of(message)
        with self._lock:
            self.outcome.pop(message_id, None)
            self.replayed.append(message_id)
            self.settled.clear()
        self.ledger.deliveries.expect_again(WORK, message_id, "replayed from the DLQ by hand, after the fix")
        where = {"exchange": EXCHANGE, "routing_key": KEY}
        self.ctx.emit("retry", PRODUCER, message_id, self.ledger.deliveries.attempts_of(WORK, message_id) + 1,
                      replay=True, from_queue=DLQ, reason="replayed from the DLQ after the consumer was fixed", **where)
        self._publish(message.payload, EXCHANGE, KEY, message_id, {"replayed": True})
        self.ctx.emit("route", f"exchange:{EXCHANGE}", message_id, queue=WORK, binding=KEY, replay=True, **where)

    # -- publishing --------------------------------------------------------------------

    def _publish_order(self, n: int) -> None:
        message_id = f"m{n}"
        poison = message_id in self.poison_ids
        payload = {"id": message_id, "n": n, "amount": "twelve" if poison else n * 10}
        where = {"exchange": EXCHANGE, "exchange_type": "direct", "routing_key": KEY}
        started = self.ledger.sent(message_id, (WORK,))
        self._publish(payload, EXCHANGE, KEY, message_id)
        with self._lock:
            self.published_ids.append(message_id)
        self.ctx.emit("publish", PRODUCER, message_id, confirmed=True, poison=poison,
                      perceived_ms=round((time.perf_counter() - started) * 1000.0, 3), **where)
        self.ctx.emit("route", f"exchange:{EXCHANGE}", message_id, binding=KEY, queue=WORK, **where)
        self.ledger.announced(message_id)

    def _publish(self, payload: dict[str, Any], exchange: str, routing_key: str, message_id: str,
                 headers: dict[str, Any] | None = None) -> None:
        """Publish and wait for the broker's confirm; every thread shares the one confirming channel."""
        name = self.topology.prefix + exchange if exchange else ""
        with self._publish_lock:
            self.producer.publish(payload, exchange=name, routing_key=routing_key, headers=headers or {},
                                  delivery_mode=1, serializer="json", retry=False, message_id=message_id)

    # -- the consumer ------------------------------------------------------------------

    def _handle(self, consumer: Any, message: Any) -> None:
        if consumer.stopping.is_set():
            # The run is over: a message another stopping consumer just gave back (a stopped
            # loop) is left unacked, so the broker keeps it when this connection closes too.
            return
        ctx, name = self.ctx, consumer.name
        message_id = message_id_of(message)
        actor = f"consumer:{name}"
        redelivered = bool(message.delivery_info.get("redelivered"))
        self.ledger.wait_announced(message_id)
        came_back = self._came_back(message, message_id)
        d = self.ledger.delivered(WORK, message_id, name, redelivered)
        extra: dict[str, Any] = {"reason": d.reason} if d.duplicate else {}
        ctx.emit("deliver", actor, message_id, d.attempt, d.duplicate, queue=WORK, consumer=name,
                 redelivered=redelivered, **came_back, **extra)
        consumer.pause(self.p["work_ms"] / 1000.0)
        try:
            amount = self._amount(message.payload)
        except BadPayload as exc:
            self._failed(consumer, message, message_id, d.attempt, str(exc))
            return
        timing = {}
        with self._lock:
            first = self.outcome.get(message_id) != PROCESSED
            self.outcome[message_id] = PROCESSED
        if first and not d.duplicate:
            timing["end_to_end_ms"] = round((time.perf_counter() - self.ledger.sent_at[message_id]) * 1000.0, 3)
        if message_id in self.poison_ids:
            timing["planned"] = False  # a poison message handled after the fix: not in the run's plan
        ctx.emit("process", actor, message_id, d.attempt, d.duplicate, queue=WORK, consumer=name, effect=True,
                 amount=amount, **timing)
        message.ack()
        ctx.emit("ack", actor, message_id, d.attempt, d.duplicate, queue=WORK, consumer=name)
        self._check_settled()

    def _amount(self, payload: dict[str, Any]) -> int:
        amount = payload.get("amount")
        if isinstance(amount, int) and not isinstance(amount, bool):
            return amount
        if self.fixed and amount in WORDS:
            return WORDS[amount]
        raise BadPayload(f"bad payload: amount {amount!r} is not a number")

    def _came_back(self, message: Any, message_id: str) -> dict[str, Any]:
        """A retried message back from its TTL queue: record the broker's route back; its wait."""
        with self._lock:
            sent = self.retry_sent.pop(message_id, None)
            if sent is None:
                return {}
            number, at, delay = sent
            waited = round((time.perf_counter() - at) * 1000.0, 3)
            self.waited_ms.setdefault(message_id, []).append(waited)
        x_death = self.topology.x_death(message.headers)
        self.ctx.emit("route", f"exchange:{EXCHANGE}", message_id, queue=WORK, binding=KEY,
                      from_queue=retry_queue(number), expired=True, reason="expired", delay_ms=delay,
                      waited_ms=waited, x_death=x_death, dead_letter=False)
        return {"waited_ms": waited, "backoff_ms": delay, "retry": number}

    def _failed(self, consumer: Any, message: Any, message_id: str, attempt: int, why: str) -> None:
        ctx, name = self.ctx, consumer.name
        actor = f"consumer:{name}"
        common = {"queue": WORK, "consumer": name, "reason": why}
        if self.mode == "requeue":
            if attempt >= LOOP_CAP:
                with self._lock:
                    self.outcome[message_id] = LOOPING
                ctx.emit("error", actor, message_id, attempt, True, looping=True, queue=WORK, consumer=name,
                         reason=f"{message_id} was delivered {attempt} times and failed every time: requeue forever. "
                                "The run stops the loop here (held unacked); it is still in the work queue")
                self._check_settled()
                return
            ctx.emit("nack", actor, message_id, attempt, attempt > 1, requeue=True, **common)
            self.ledger.deliveries.expect_again(WORK, message_id, "requeued by the consumer (basic.reject, requeue=true): "
                                                "the broker delivers it again at once")
            # Recorded first: another consumer may get it back before this thread could say so.
            ctx.emit("requeue", f"queue:{WORK}", message_id, queue=WORK, consumer=name,
                     reason="rejected with requeue: back in the work queue, delivered again at once")
            message.reject(requeue=True)
            return
        if attempt < self.p["max_attempts"]:
            self._retry(consumer, message, message_id, attempt, why)
            return
        last = {"dead_letter": True} if self.mode == "dead-letter" else {"dropped": True}
        ctx.emit("nack", actor, message_id, attempt, attempt > 1, requeue=False, attempts=attempt, **last, **common,
                 gives_up=f"attempt {attempt} of {self.p['max_attempts']} failed: rejected without requeue; "
                 + ("RabbitMQ dead-letters it to the DLQ" if self.mode == "dead-letter"
                    else "the work queue has no dead-letter exchange, so the broker discards it"))
        if self.mode == "drop":
            with self._lock:
                self.outcome[message_id] = DROPPED
        message.reject(requeue=False)
        self._check_settled()

    def _retry(self, consumer: Any, message: Any, message_id: str, attempt: int, why: str) -> None:
        """Send the failed message to the next TTL queue (confirmed), then ack it here."""
        ctx, name = self.ctx, consumer.name
        number, delay = attempt, self.delays_ms[attempt - 1]
        queue = retry_queue(number)
        ctx.emit("nack", f"consumer:{name}", message_id, attempt, attempt > 1, requeue=False, queue=WORK,
                 consumer=name, reason=why, retry_in_ms=delay)
        self.ledger.deliveries.expect_again(
            WORK, message_id, f"retry {number} of {self.p['max_attempts'] - 1}: back from {queue} after its "
            f"{delay} ms TTL (RabbitMQ dead-lettered it back, reason expired)")
        # Recorded before the publish: with a TTL of a few ms the copy may be back before a confirm is.
        ctx.emit("retry", f"queue:{queue}", message_id, attempt + 1, queue=queue, consumer=name, delay_ms=delay,
                 retry=number, reason=f"attempt {attempt} failed; attempt {attempt + 1} after {delay} ms in {queue}")
        with self._lock:
            self.retry_sent[message_id] = (number, time.perf_counter(), delay)
        self._publish(message.payload, "", self.topology.queues[queue].name, message_id, {"attempt": attempt + 1})
        message.ack()
        ctx.emit("ack", f"consumer:{name}", message_id, attempt, attempt > 1, queue=WORK, consumer=name,
                 retried_via=queue)

    # -- the DLQ -----------------------------------------------------------------------

    def _dead_lettered(self, message: Any) -> str:
        """On the watcher's thread: a message the broker routed to the DLQ, with its x-death."""
        message_id = message_id_of(message)
        x_death = self.topology.x_death(message.headers)
        rejected = next((e for e in x_death if e["queue"] == WORK), x_death[0] if x_death else {})
        attempts = self.ledger.deliveries.attempts_of(WORK, message_id)
        with self._lock:
            self.dlq[message_id] = {"message_id": message_id, "attempts": attempts, "x_death": x_death}
            self.outcome[message_id] = DEAD
        self.ctx.emit("route", f"exchange:{DLX}", message_id, queue=DLQ, from_queue=WORK, dead_letter=True,
                      reason=rejected.get("reason", ""), x_death=x_death, attempts=attempts, exchange=DLX)
        self.ctx.emit("enqueue", f"queue:{DLQ}", message_id, queue=DLQ, attempts=attempts)
        self._check_settled()
        return message_id

    # -- settling and the result ---------------------------------------------------------

    def _check_settled(self) -> None:
        with self._lock:
            done = (len(self.published_ids) == self.p["messages"]
                    and all(m in self.outcome for m in self.published_ids))
        if done:
            self.settled.set()
        else:
            self.settled.clear()

    def _drain_timeout(self) -> float:
        work_s = self.p["work_ms"] / 1000.0
        attempts = LOOP_CAP if self.mode == "requeue" else self.p["max_attempts"]
        deliveries = self.p["messages"] + self.p["poison"] * attempts
        return 20.0 + deliveries * work_s / self.p["consumers"] + sum(self.delays_ms) / 1000.0

    def _broker_agrees(self, held: dict[str, int]) -> bool:
        ready = self.topology.ready_counts(self.channel)
        return all(ready.get(queue, 0) == n for queue, n in held.items() if queue in ready)

    def _result(self, broker_ready: dict[str, int], held: dict[str, int]) -> dict[str, Any]:
        with self._lock:
            outcome = dict(self.outcome)
            published = list(self.published_ids)
            waited = {m: list(w) for m, w in self.waited_ms.items()}
        tally = Counter(outcome.get(m, "") for m in published)
        good = [m for m in published if m not in self.poison_ids]
        attempts = {m: self.ledger.deliveries.attempts_of(WORK, m) for m in self.poison_ids}
        queues = {name: {"broker_ready": broker_ready.get(name), "expected_ready": held.get(name, 0),
                         "agrees": broker_ready.get(name) == held.get(name, 0)}
                  for name in (WORK, DLQ) if name in broker_ready}
        lost = sum(1 for m in published if outcome.get(m) in (None, DROPPED))
        return {
            **self.topology.describe(),
            "on_failure": self.mode,
            "max_attempts": self.p["max_attempts"],
            "retry_delays_ms": self.delays_ms,
            "poison_ids": sorted(self.poison_ids, key=lambda m: int(m[1:])),
            "attempts": attempts,
            "waited_ms": waited,
            "retries": sum(max(0, n - 1) for n in attempts.values()) if self.mode != "requeue" else 0,
            "queue_counts": queues,
            "counts_agree": all(q["agrees"] for q in queues.values()),
            "dlq": list(self.dlq.values()),
            "dead_lettered": len(self.dlq),
            "replayed": list(self.replayed),
            "processed": {"good": sum(1 for m in good if outcome.get(m) == PROCESSED), "of": len(good),
                          "poison_after_fix": sum(1 for m in self.poison_ids if outcome.get(m) == PROCESSED)},
            "dropped": sorted((m for m in published if outcome.get(m) == DROPPED), key=lambda m: int(m[1:])),
            "looping": {m: self.ledger.deliveries.attempts_of(WORK, m) for m in published if outcome.get(m) == LOOPING},
            "loop_cap": LOOP_CAP if self.mode == "requeue" else None,
            "outcomes": dict(tally),
            "lost": lost,
        }


def backoff_ms(first_ms: int, attempts: int) -> list[int]:
    """The TTL of each retry queue: ``first_ms`` doubling, one per retry (attempts − 1 of them)."""
    return [first_ms * 2 ** n for n in range(max(0, attempts - 1))]


def poison_ids(messages: int, poison: int) -> set[str]:
    """Which orders are poison: spread over the run (m3, m6, m10 for 3 of 10)."""
    return {f"m{i * messages // poison}" for i in range(1, poison + 1)} if poison else set()


def message_id_of(message: Any) -> str:
    return message.properties.get("message_id") or message.payload["id"]
