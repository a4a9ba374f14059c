"""Per-client token buckets: a burst from one client is cut off, steady use is not.

In memory, per process (the dashboard is one daphne process). The number of clients kept
is bounded: the stalest are forgotten first, which at worst forgives a client early.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CLIENTS = 10_000


class RateLimiter:
    """``allow(key)`` takes one token from ``key``'s bucket of ``burst``, refilled at ``rate``/s."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            allowed = tokens >= 1
            self._buckets[key] = (tokens - 1 if allowed else tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return allowed

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` has a token again (0 if it has one now)."""
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, self.clock()))
        missing = 1 - min(self.burst, tokens + (self.clock() - then) * self.rate)
        return max(0.0, missing / self.rate) if self.rate > 0 else float("inf")

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


_limiters: dict[tuple[str, float, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter(name: str, rate: float, burst: float) -> RateLimiter:
    """The process's limiter for ``name`` at this rate (a changed setting gets a fresh one)."""
    key = (name, rate, burst)
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = RateLimiter(rate, burst)
        return _limiters[key]


def reset_all() -> None:
    with _limiters_lock:
        for each in _limiters.values():
            each.reset()
