"""What the dashboard knows about each queue and message, kept from the events it emits.

The browser panel derives the same numbers from the same events (static/js/panels/
amqp-*.js), so the run result, the panel and the tests all count one way:

* ready = routed + requeued − delivered (waiting in the queue, as far as handlers saw);
* unacked = delivered − acked − requeued (held by a consumer);
* a delivery's ``attempt`` counts deliveries of that message to that queue (the logical
  consumer, in the run's ``flows.ledger.DeliveryLedger``); from the second on it is a
  duplicate, and the reason says why.

The publisher records ``publish`` (with the time until the broker's confirm) and the
``route`` events once the confirm is back, and a consumer can receive the message before
that; ``announced`` / ``wait_announced`` keep the event log causal (publish, route, then
deliver) without a separate confirm event per message.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from ..ledger import Delivery, DeliveryLedger

DELIVERED_AGAIN = "delivered again"
REDELIVERED = "delivered again (the broker set redelivered)"


@dataclass
class QueueCounts:
    routed: int = 0
    delivered: int = 0
    acked: int = 0
    requeued: int = 0
    duplicates: int = 0

    @property
    def ready(self) -> int:
        return self.routed + self.requeued - self.delivered

    @property
    def unacked(self) -> int:
        return self.delivered - self.acked - self.requeued

    def as_dict(self) -> dict[str, int]:
        return {"routed": self.routed, "delivered": self.delivered, "acked": self.acked, "requeued": self.requeued,
                "duplicates": self.duplicates, "ready": self.ready, "unacked": self.unacked}


@dataclass
class _Holding:
    queue: str
    message_id: str
    handled: bool = False


@dataclass
class Ledger:
    queues: dict[str, QueueCounts] = field(default_factory=lambda: defaultdict(QueueCounts))
    deliveries: DeliveryLedger = field(default_factory=DeliveryLedger)  # attempts per (queue, message)
    first_acked: set = field(default_factory=set)  # (queue, message)
    first_acks: int = 0
    last_ack_at: float = 0.0
    _held: dict[str, dict[str, _Holding]] = field(default_factory=lambda: defaultdict(dict))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _announced: set = field(default_factory=set)
    _announce: threading.Condition = field(default_factory=threading.Condition)
    _waiting: int = 0

    @property
    def sent_at(self) -> dict[str, float]:
        return self.deliveries.sent_at  # type: ignore[return-value]

    # -- publisher side ---------------------------------------------------------------

    def sent(self, message_id: str, queues: tuple[str, ...] | list[str] = ()) -> float:
        """The message is handed to the broker now, which puts one copy in each of ``queues``."""
        now = self.deliveries.sent(message_id)
        with self._lock:
            for queue in queues:
                self.queues[queue].routed += 1
        return now

    def announced(self, message_id: str) -> None:
        """The publisher has recorded this message's publish and route events."""
        with self._announce:
            self._announced.add(message_id)
            if self._waiting:
                self._announce.notify_all()

    def wait_announced(self, message_id: str, timeout: float = 2.0) -> None:
        """Consumer side: hold the deliver event until the publish it follows is recorded."""
        if message_id in self._announced:  # the usual case, no lock needed to read a set
            return
        deadline = time.monotonic() + timeout
        with self._announce:
            while message_id not in self._announced:
                left = deadline - time.monotonic()
                if left <= 0:
                    return  # the publisher died mid-publish: record the delivery anyway
                self._waiting += 1
                try:
                    self._announce.wait(left)
                finally:
                    self._waiting -= 1

    # -- consumer side ----------------------------------------------------------------

    def delivered(self, queue: str, message_id: str, consumer: str, redelivered: bool) -> Delivery:
        delivery = self.deliveries.delivered(queue, message_id, REDELIVERED if redelivered else DELIVERED_AGAIN)
        with self._lock:
            counts = self.queues[queue]
            counts.delivered += 1
            self._held[consumer][message_id] = _Holding(queue, message_id)
            if delivery.duplicate:
                counts.duplicates += 1
        return delivery

    def handled(self, consumer: str, message_id: str) -> None:
        with self._lock:
            holding = self._held[consumer].get(message_id)
            if holding:
                holding.handled = True

    def acked(self, queue: str, message_id: str, consumer: str) -> bool:
        """Record an ack; True when it is the first ack of this message on this queue."""
        now = time.perf_counter()
        with self._lock:
            self.queues[queue].acked += 1
            self._held[consumer].pop(message_id, None)
            key = (queue, message_id)
            if key in self.first_acked:
                return False
            self.first_acked.add(key)
            self.first_acks += 1
            self.last_ack_at = now
            return True

    def crashed(self, consumer: str) -> list[_Holding]:
        """The consumer died: everything it held unacked goes back to its queue."""
        with self._lock:
            held = list(self._held.pop(consumer, {}).values())
            for h in held:
                self.queues[h.queue].requeued += 1
                what = "after handling it" if h.handled else "while it waited in the consumer's prefetch, unhandled"
                self.deliveries.expect_again(h.queue, h.message_id,
                    f"redelivered: consumer:{consumer} crashed {what}, before its ack; "
                    "the broker requeued the unacked message and set redelivered")
            return held

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: counts.as_dict() for name, counts in self.queues.items()}
