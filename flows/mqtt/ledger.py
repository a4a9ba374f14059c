"""Who was sent what, and who got what: the bookkeeping behind duplicates and losses.

Thread-safe: publishes are recorded by the run thread, deliveries by each subscriber's
network thread. A *duplicate* is a second delivery of the same message id to the same
subscriber (one logical consumer); a *lost* message is one whose topic the subscriber's
filter matches but that never reached it by the end of the run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Published:
    message_id: str
    n: int
    topic: str
    qos: int
    retain: bool
    sent_at: float
    # subscriber → (route outcome, why) as decided when the message was published
    routes: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    attempt: int
    duplicate: bool
    end_to_end_ms: float | None
    published: Published | None


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: dict[str, Published] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.duplicates: list[dict[str, Any]] = []
        self.unexpected: list[dict[str, Any]] = []
        self.qos_differences: list[dict[str, Any]] = []
        self.deliveries = 0
        self.first_delivery_at: float | None = None
        self.last_delivery_at = 0.0

    def publish(self, item: Published) -> None:
        with self._lock:
            self.published[item.message_id] = item

    def deliver(self, subscriber: str, message_id: str) -> Delivery:
        now = time.perf_counter()
        with self._lock:
            key = (subscriber, message_id)
            attempt = self.counts.get(key, 0) + 1
            self.counts[key] = attempt
            self.deliveries += 1
            if self.first_delivery_at is None:
                self.first_delivery_at = now
            self.last_delivery_at = now
            item = self.published.get(message_id)
        e2e = round((now - item.sent_at) * 1000.0, 3) if item is not None else None
        return Delivery(attempt, attempt > 1, e2e, item)

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
        with self._lock:
            return self.counts.get((subscriber, message_id), 0)

    def outstanding(self, wanted: list[tuple[str, str]]) -> int:
        """How many (subscriber, message id) pairs have not been delivered yet."""
        with self._lock:
            return sum(1 for key in wanted if key not in self.counts)

    def quiet_for(self, since: float) -> float:
        """Seconds without a delivery, counting from ``since`` (a perf_counter) at the earliest."""
        with self._lock:
            return time.perf_counter() - max(self.last_delivery_at, since)

    def lost(self, subscribers: list[str]) -> list[dict[str, Any]]:
        """Routed (matching) pairs never delivered, with the reason decided at publish time."""
        with self._lock:
            out = []
            for item in sorted(self.published.values(), key=lambda p: p.n):
                for name, (outcome, why) in item.routes.items():
                    if name in subscribers and (name, item.message_id) not in self.counts:
                        reason = why if outcome == "drop" else f"the broker never delivered it (expected to {outcome})"
                        out.append({"message_id": item.message_id, "n": item.n, "subscriber": name,
                                    "topic": item.topic, "outcome": outcome, "reason": reason})
            return out
