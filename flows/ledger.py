"""The delivery ledger every protocol keeps: attempts per logical consumer and message.

A *logical consumer* is what should see a message once: an AMQP queue, a Kafka consumer
group, an MQTT subscriber, the Celery order queue. A second delivery of the same message
to it is a *duplicate*, and the event says why: the reason noted when the holder of the
earlier delivery crashed or lost its ack (``expect_again``), or else the protocol's own
default. Thread-safe: consumers record deliveries from their own threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import NamedTuple


class Delivery(NamedTuple):
    """One delivery as the ledger saw it; a NamedTuple (immutable) because every delivery of every
    protocol builds one on a broker's network thread: a frozen dataclass costs several times more."""

    attempt: int  # 1 for the first delivery to this logical consumer
    reason: str = ""  # why this delivery is a duplicate ("" for the first)
    previous: str | None = None  # who held the message before, for a duplicate
    end_to_end_ms: float | None = None  # since ``sent``, when the ledger was told
    cause_seq: int | None = None  # the seq of the crash, revoke or lost ack that made a duplicate happen

    @property
    def duplicate(self) -> bool:
        return self.attempt > 1


class DeliveryLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts: dict[tuple[str, Hashable], int] = {}
        self.sent_at: dict[Hashable, float] = {}
        self._holder: dict[tuple[str, Hashable], str] = {}
        self._why: dict[tuple[str, Hashable], str] = {}
        self._reason: dict[tuple[str, Hashable], str] = {}
        self._cause: dict[tuple[str, Hashable], int] = {}
        self.deliveries = 0
        self.last_delivery_at = 0.0

    def sent(self, message: Hashable, at: float | None = None) -> float:
        """The message left the producer at ``at`` (a perf_counter; now by default)."""
        at = time.perf_counter() if at is None else at
        self.sent_at[message] = at
        return at

    def delivered(self, consumer: str, message: Hashable, default_reason: str = "", holder: str | None = None
                  ) -> Delivery:
        """Count one delivery of ``message`` to ``consumer`` (handed to ``holder``, a member of it)."""
        now = time.perf_counter()
        key = (consumer, message)
        with self._lock:
            attempt = self.attempts.get(key, 0) + 1
            self.attempts[key] = attempt
            self.deliveries += 1
            self.last_delivery_at = now
            previous = self._holder.get(key)
            if holder is not None:
                self._holder[key] = holder
            reason = ""
            cause = None
            if attempt > 1:
                reason = self._reason[key] = self._why.pop(key, "") or default_reason
                cause = self._cause.pop(key, None)
        sent = self.sent_at.get(message)
        e2e = round((now - sent) * 1000.0, 3) if sent is not None else None
        return Delivery(attempt, reason, previous if attempt > 1 else None, e2e, cause)

    def expect_again(self, consumer: str, message: Hashable, why: str) -> None:
        """The next delivery of ``message`` to ``consumer`` will be a duplicate, for this reason."""
        with self._lock:
            self._why[(consumer, message)] = why

    def caused_by(self, consumer: str, message: Hashable, seq: int) -> None:
        """The next delivery of ``message`` to ``consumer`` happens because of the event ``seq``.

        The first cause noted wins: a crashed member's partitions are also revoked on the way out."""
        if seq:
            with self._lock:
                self._cause.setdefault((consumer, message), seq)

    def attempts_of(self, consumer: str, message: Hashable) -> int:
        with self._lock:
            return self.attempts.get((consumer, message), 0)

    def reason_of(self, consumer: str, message: Hashable) -> str:
        """Why the latest delivery of ``message`` to ``consumer`` was a duplicate ("" if it was not)."""
        with self._lock:
            return self._reason.get((consumer, message), "")

    def of(self, consumer: str) -> dict[Hashable, int]:
        """Attempts per message of one logical consumer."""
        with self._lock:
            return {m: n for (c, m), n in self.attempts.items() if c == consumer}

    def duplicates(self, consumer: str | None = None) -> int:
        with self._lock:
            return sum(n - 1 for (c, _m), n in self.attempts.items() if n > 1 and consumer in (None, c))
