"""One lane of ``sync-vs-async``: one protocol carrying the run's orders to the same work.

Every lane has a caller and a downstream "fulfilment" service. The base class owns what
all lanes share, so the difference between lanes is the pattern and nothing else:

- ``place`` is the caller's side of one order: it times the caller's wait (the
  *perceived* latency), records it, retries a sync call the downstream crashed on, and
  emits ``request``/``retry``/``response``/``error`` (sync) or ``publish``/``error``
  (async).
- ``fulfil`` is the downstream's side of one handling: ``deliver``, the work (the same
  ``Fulfilment`` for every lane), ``process`` and, when the fulfilment says this handling
  crashes, a ``crash`` before the ack or response (``HandlingCrashed``).

A subclass (``flows/compare/lanes/<protocol>.py``) fills in the protocol's hooks:
``setup``, ``start_downstream``, ``stop_downstream``, ``call`` (sync) or ``hand_over``
(async), ``backlog`` and ``teardown``. Every event carries ``attrs.protocol``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..ledger import DeliveryLedger
from ..summary import latency_stats

if TYPE_CHECKING:
    from ..context import RunContext

PROTOCOLS = ("http", "grpc", "celery", "amqp", "kafka", "mqtt")
LANES: dict[str, str] = {
    "http": "flows.compare.lanes.http:HttpLane",
    "grpc": "flows.compare.lanes.grpc:GrpcLane",
    "celery": "flows.compare.lanes.celery:CeleryLane",
    "amqp": "flows.compare.lanes.amqp:AmqpLane",
    "kafka": "flows.compare.lanes.kafka:KafkaLane",
    "mqtt": "flows.compare.lanes.mqtt:MqttLane",
}
SYNC_ATTEMPTS = 3  # a sync caller tries a crashed call this often in all
SLOW_FACTOR = 5


def order_id(protocol: str, number: int) -> str:
    return f"{protocol}-{number}"


def order_number(message_id: str) -> int:
    return int(message_id.rsplit("-", 1)[1])


class CallFailed(Exception):
    """A sync call or an async hand-over failed, as the caller saw it.

    ``reason`` in the caller's words ("connection refused", "deadline exceeded", "503 from
    the server"); ``retry``: the caller tries again (the handler crashed mid-call), or not
    (the downstream is not there: failing fast is the honest sync behaviour). ``attrs``
    are the protocol's details (``status``, ``code``).
    """

    def __init__(self, reason: str, retry: bool = False, **attrs: Any) -> None:
        super().__init__(reason)
        self.reason, self.retry, self.attrs = reason, retry, attrs


class HandlingCrashed(Exception):
    """The downstream crashed after the work and before its ack (or response)."""


class Fulfilment:
    """The downstream work every lane does, and its mood: ``up``, ``slow``, ``down``, ``flaky``.

    ``flaky``: the first handling of every order the deterministic pick chooses crashes
    after the work, before the ack or response; the same orders in every lane, so lanes
    differ only by their pattern. ``down``: the workflow calls ``stop_downstream`` on every
    lane for ``outage_ms``; ``down`` below is set meanwhile.
    """

    def __init__(self, mode: str, work_ms: int, outage_ms: int = 0, flaky_rate: float = 0.2) -> None:
        self.mode = mode
        self.work_ms = work_ms * (SLOW_FACTOR if mode == "slow" else 1)
        self.outage_ms = outage_ms
        self.flaky_rate = flaky_rate
        self.down = threading.Event()

    @property
    def work_s(self) -> float:
        return self.work_ms / 1000.0

    def crashes(self, message_id: str, attempt: int) -> bool:
        if self.mode != "flaky" or attempt != 1:
            return False
        # Spread evenly, not random: with 20 %, orders 3, 8, 13, … (every fifth) crash once.
        if self.flaky_rate <= 0:
            return False
        period = max(1, round(1 / self.flaky_rate))
        return (order_number(message_id) - 1) % period == period // 2


class Tally:
    """One lane's figures, kept as they happen (any thread): the summary's ``result.protocols[p]``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.perceived: list[float] = []
        self.end_to_end: list[float] = []
        self.placed: set[str] = set()
        self.accepted: set[str] = set()  # handed over and acknowledged to the caller (async) or answered (sync)
        self.completed: set[str] = set()  # first processing of each order
        self.reasons: Counter[str] = Counter()  # errors by what the caller was told (their sum: errors)
        self.retries = 0
        self.duplicates = 0
        self.backlog_max = 0

    def add(self, **changes: Any) -> None:
        """Add to counters (numbers), lists (a list of values) and sets (a set of orders)."""
        with self._lock:
            for name, value in changes.items():
                held = getattr(self, name)
                if isinstance(held, set):
                    held |= value
                elif isinstance(held, list):
                    held.extend(value)
                else:
                    setattr(self, name, held + value)

    def failed(self, reason: str) -> None:
        with self._lock:
            self.reasons[reason] += 1

    def figures(self, sync: bool) -> dict[str, Any]:
        with self._lock:
            lost = 0 if sync else len(self.accepted - self.completed)
            return {
                "perceived": _stats(self.perceived),
                "end_to_end": _stats(self.end_to_end),
                "placed": len(self.placed),
                "accepted": len(self.accepted),
                "completed": len(self.completed),
                "errors": self.reasons.total(),
                "error_reasons": dict(self.reasons.most_common()),
                "retries": self.retries,
                "lost": lost,
                "duplicates": self.duplicates,
                "backlog_max": self.backlog_max,
            }


def _stats(values: Iterable[float]) -> dict[str, float | None]:
    stats = latency_stats(values)
    return {key: stats[key] for key in ("p50", "p95", "p99", "max")}


class Lane:
    protocol: ClassVar[str]
    sync: ClassVar[bool]
    broker: ClassVar[str | None] = None  # the transport this lane needs (flows.transports), if any
    backlog_source: ClassVar[str] = ""  # what ``backlog`` counts, in words, for the view
    backlog_actor: ClassVar[str] = ""  # where the backlog sits, the actor of ``backlog`` events ("queue:amqp.orders")

    def __init__(self, ctx: RunContext, fulfilment: Fulfilment, ledger: DeliveryLedger) -> None:
        self.ctx = ctx
        self.fulfilment = fulfilment
        self.ledger = ledger
        self.tally = Tally()
        self.caller = f"client:{self.protocol}"
        # Async: the orders whose caller side is in the log (``fulfil`` waits for it, below).
        self._recorded: set[str] = set()
        self._recorded_changed = threading.Condition()

    # -- hooks a protocol fills in ---------------------------------------------------

    def setup(self) -> None:
        """Reach the broker; create the lane's topology and caller client."""

    def start_downstream(self) -> None:
        """Start the fulfilment service (server, consumer, worker, subscriber); return once it is ready."""
        raise NotImplementedError

    def stop_downstream(self) -> None:
        """The outage: stop the fulfilment service so sync calls fail and async messages wait."""
        raise NotImplementedError

    def call(self, order: str) -> dict[str, Any]:
        """Sync lanes: one attempt of the call, returning once the answer came; attrs for the
        ``response`` (status, code). Raise ``CallFailed`` as the caller saw the failure."""
        raise NotImplementedError

    def hand_over(self, order: str) -> dict[str, Any]:
        """Async lanes: hand the order to the broker, returning once the broker accepted it
        (confirm, PUBACK, acks=all, 202); attrs for the ``publish``. Raise ``CallFailed``."""
        raise NotImplementedError

    def backlog(self) -> int | None:
        """Async lanes: orders waiting at the broker now, read from the broker (queue depth, lag)."""
        return None

    def dropped_by_broker(self) -> set[str]:
        """Async lanes: accepted orders the broker will not deliver (again), as far as the lane can tell
        (a broker that forgets unacknowledged messages): the run stops waiting for them."""
        return set()

    def broker_counts(self) -> dict[str, Any]:
        """At the end: the broker's own numbers to cross-check the tally (queue depth, end offsets)."""
        return {}

    def teardown(self) -> None:
        """Stop clients and delete what the lane made; always runs."""

    # -- the caller's side, the same for every lane ----------------------------------

    def emit(self, kind: str, actor: str, message_id: str = "", attempt: int = 1, duplicate: bool = False,
             **attrs: Any) -> int:
        return self.ctx.emit(kind, actor, message_id, attempt, duplicate, protocol=self.protocol, **attrs)

    def place(self, order: str) -> None:
        """Place one order and wait as this pattern's caller waits."""
        started = self.ledger.sent(order)
        self.tally.add(placed={order})
        if self.sync:
            self._call(order, started)
            return
        try:
            self._hand_over(order, started)
        finally:
            with self._recorded_changed:
                self._recorded.add(order)
                self._recorded_changed.notify_all()

    def _waited_ms(self, started: float) -> float:
        return round((time.perf_counter() - started) * 1000.0, 3)

    def _call(self, order: str, started: float) -> None:
        for attempt in range(1, SYNC_ATTEMPTS + 1):
            self.emit("request" if attempt == 1 else "retry", self.caller, order, attempt)
            try:
                attrs = self.call(order)
            except CallFailed as failed:
                self.tally.failed(failed.reason)
                last = not failed.retry or attempt == SYNC_ATTEMPTS
                waited = self._waited_ms(started)
                self.emit("error", self.caller, order, attempt, reason=failed.reason, retrying=not last,
                          **({"perceived_ms": waited} if last else {}), **failed.attrs)
                if last:
                    self.tally.add(perceived=[waited])
                    return
                self.tally.add(retries=1)
                continue
            waited = self._waited_ms(started)
            self.tally.add(perceived=[waited], end_to_end=[waited], accepted={order})
            self.emit("response", self.caller, order, attempt, perceived_ms=waited, end_to_end_ms=waited, **attrs)
            return

    def _hand_over(self, order: str, started: float) -> None:
        try:
            attrs = self.hand_over(order)
        except CallFailed as failed:
            waited = self._waited_ms(started)
            self.tally.failed(failed.reason)
            self.tally.add(perceived=[waited])
            self.emit("error", self.caller, order, reason=failed.reason, perceived_ms=waited, **failed.attrs)
            return
        waited = self._waited_ms(started)
        self.tally.add(perceived=[waited], accepted={order})
        self.emit("publish", self.caller, order, perceived_ms=waited, **attrs)

    # -- the downstream's side, the same for every lane -------------------------------

    def _wait_recorded(self, order: str, timeout: float = 2.0) -> None:
        """An async caller records its ``publish`` once the broker's acceptance is back (a
        confirm, a PUBACK, a 202), and the broker may hand the order to the consumer before
        that: the consumer waits for the caller's record so the log reads publish, then
        deliver. Briefly at most, never past ``timeout`` (a caller that died mid-publish must
        not stop the consumer)."""
        with self._recorded_changed:
            self._recorded_changed.wait_for(lambda: order in self._recorded, timeout)

    def fulfil(self, order: str, actor: str, default_reason: str = "", **attrs: Any) -> None:
        """One handling of ``order`` by ``actor``: deliver, work, process; raise
        ``HandlingCrashed`` when this handling crashes before its ack or response.

        Called on the downstream's own thread. ``default_reason`` says why a second
        delivery happens when no crash was noted (the protocol's words).
        """
        if not self.sync:
            self._wait_recorded(order)
        delivery = self.ledger.delivered(self.protocol, order, default_reason, holder=actor)
        attempt, duplicate = delivery.attempt, delivery.duplicate
        extra = {"reason": delivery.reason, **({"cause_seq": delivery.cause_seq} if delivery.cause_seq else {})} \
            if duplicate else {}
        if duplicate:
            self.tally.add(duplicates=1)
        self.emit("deliver", actor, order, attempt, duplicate, **extra, **attrs)
        time.sleep(self.fulfilment.work_s)
        first = not duplicate
        # The end-to-end wait ends at the first processing; a sync caller's ends at its response.
        latency = {}
        if first and not self.sync:
            latency["end_to_end_ms"] = self._waited_ms(self.ledger.sent_at[order])
            self.tally.add(end_to_end=[latency["end_to_end_ms"]])
        if first:
            self.tally.add(completed={order})
        self.emit("process", actor, order, attempt, duplicate, effect=True, work_ms=self.fulfilment.work_ms,
                  **extra, **latency, **attrs)
        if self.fulfilment.crashes(order, attempt):
            why = "the handler crashed after the work, before its " + ("response: the caller retried"
                                                                      if self.sync else "ack: the broker delivered it again")
            self.ledger.expect_again(self.protocol, order, why)
            seq = self.emit("crash", actor, order, attempt, reason=why, message_ids=[order])
            self.ledger.caused_by(self.protocol, order, seq)
            raise HandlingCrashed(why)


def each_lane(lanes: Sequence[Lane], step: str) -> None:
    """``step`` on every lane at once, each on a thread of its own: a Kafka member takes
    seconds to join its group, and the other lanes must not wait that long for it (nor
    stay down that much longer after an outage). Raises the first failure."""
    failures: list[BaseException] = []

    def one(lane: Lane) -> None:
        try:
            getattr(lane, step)()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, on the outage thread
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(lane,), name=f"{step}-{lane.protocol}", daemon=True)
               for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
