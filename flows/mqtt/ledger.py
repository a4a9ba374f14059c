"""Who was sent what, and who got what: the bookkeeping behind duplicates and losses.

Thread-safe: publishes are recorded by the run thread, deliveries by each subscriber's
network thread. A *duplicate* is a second delivery of the same message id to the same
subscriber (one logical consumer, counted by ``flows.ledger``); a *lost* message is one whose topic the subscriber's
filter matches but that never reached it by the end of the run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..ledger import Delivery, DeliveryLedger


@dataclass(slots=True)  # one per message, kept for the run: no per-instance __dict__ to allocate and collect
class Published:
    message_id: str
    n: int
    topic: str
    qos: int
    retain: bool
    sent_at: float
    # subscriber → (route outcome, why) as decided when the message was published
    routes: dict[str, tuple[str, str]] = field(default_factory=dict)
    # subscriber → the QoS of its matching subscription when the message was published
    subscription_qos: dict[str, int] = field(default_factory=dict)
    # In the sample (its ordinary events recorded one by one), as decided when it was published:
    # the callbacks of its PUBACK and deliveries read it instead of asking the fidelity again.
    traced: bool = True


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: dict[str, Published] = {}
        self.attempts = DeliveryLedger()  # per (subscriber, message id)
        self.duplicates: list[dict[str, Any]] = []
        self.unexpected: list[dict[str, Any]] = []
        self.qos_differences: list[dict[str, Any]] = []

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        return self.attempts.attempts  # type: ignore[return-value]

    @property
    def deliveries(self) -> int:
        return self.attempts.deliveries

    @property
    def last_delivery_at(self) -> float:
        return self.attempts.last_delivery_at

    def publish(self, item: Published) -> None:
        with self._lock:
            self.published[item.message_id] = item
        self.attempts.sent(item.message_id, item.sent_at)

    def deliver(self, subscriber: str, message_id: str, reason: str) -> tuple[Delivery, Published | None]:
        """One delivery to ``subscriber`` (a duplicate ``reason`` if it is not the first)."""
        delivery = self.attempts.delivered(subscriber, message_id, reason)
        # One dict read, atomic under the GIL: ``published`` only ever gains entries (the lock
        # guards the run thread's writes against ``lost`` walking it), so no lock per delivery.
        return delivery, self.published.get(message_id)

    def note_duplicate(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.duplicates.append(entry)

    def note_unexpected(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.unexpected.append(entry)

    def note_qos_difference(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.qos_differences.append(entry)

    def got(self, subscriber: str, message_id: str) -> int:
        return self.attempts.attempts_of(subscriber, message_id)

    def outstanding(self, wanted: list[tuple[str, str]]) -> int:
        """How many (subscriber, message id) pairs have not been delivered yet."""
        counts = self.counts
        return sum(1 for key in wanted if key not in counts)

    def quiet_for(self, since: float) -> float:
        """Seconds without a delivery, counting from ``since`` (a perf_counter) at the earliest."""
        return time.perf_counter() - max(self.last_delivery_at, since)

    def lost(self, subscribers: list[str]) -> list[dict[str, Any]]:
        """Routed (matching) pairs never delivered, with the reason decided at publish time."""
        counts = dict(self.counts)
        with self._lock:
            out = []
            for item in sorted(self.published.values(), key=lambda p: p.n):
                for name, (outcome, why) in item.routes.items():
                    if name in subscribers and (name, item.message_id) not in counts:
                        reason = why if outcome == "drop" else f"the broker never delivered it (expected to {outcome})"
                        out.append({"message_id": item.message_id, "n": item.n, "subscriber": name,
                                    "topic": item.topic, "outcome": outcome, "reason": reason})
            return out
