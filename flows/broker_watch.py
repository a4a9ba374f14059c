"""A run's watch on its broker: a broker that dies mid-run fails the run within seconds.

An embedded broker run as a child process reports its own exit at once (a down listener on
the broker); an external one is probed with a TCP connect every ``PROBE_EVERY_S`` and
declared gone after ``PROBE_FAILURES`` failures in a row. Either way the run is cancelled
with the broker's sentence as the reason, which wakes a workflow blocked in a broker call
(every wait goes through the run context), and the runner reports that sentence instead of
whatever the workflow raised on its way out.

What was handed to the broker and never processed is *undelivered*: counted from the
events already recorded (a message with a ``publish`` event and no ``process`` event) and
reported as the run's ``lost``.
"""

from __future__ import annotations

import threading
from typing import Any

from .context import RunContext
from .transports import Broker, BrokerUnavailable, get_broker

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 1.0
PROBE_FAILURES = 3


class BrokerWatch:
    def __init__(self, ctx: RunContext, protocol: str | None) -> None:
        self.ctx = ctx
        self.protocol = protocol
        self.broker: Broker | None = None
        self.failure: str | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BrokerWatch:
        if not self.protocol:
            return self
        broker = self.broker = get_broker(self.protocol)
        broker.add_down_listener(self._fail)
        if not broker.embedded:
            self._thread = threading.Thread(target=self._probe, name=f"watch-{broker.protocol}-{self.ctx.run_id}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self.broker is not None:
            self.broker.remove_down_listener(self._fail)

    def _fail(self, reason: str) -> None:
        if self.failure is None and not self._halt.is_set():
            self.failure = reason
            self.ctx.cancel(reason)

    def _probe(self) -> None:
        assert self.broker is not None
        failures = 0
        while not self._halt.wait(PROBE_EVERY_S):
            try:
                self.broker.probe(PROBE_TIMEOUT_S)
            except BrokerUnavailable as exc:
                failures += 1
                if failures >= PROBE_FAILURES:
                    self._fail(f"{exc} ({failures} checks in a row, {PROBE_EVERY_S:g} s apart)")
                    return
            else:
                failures = 0

    def outcome(self, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The run's error and result once the broker failed it (events so far must be stored)."""
        undelivered = undelivered_messages(self.ctx.run_id)
        error = f"{self.failure}; {undelivered} message{'s' if undelivered != 1 else ''} published before that " \
                f"{'were' if undelivered != 1 else 'was'} never processed"
        return error, {**result, "broker_failure": self.failure, "undelivered": undelivered, "lost": undelivered}


def undelivered_messages(run_id: int) -> int:
    """Messages the run recorded as published (handed to the broker) that no consumer processed."""
    from .models import Event

    published: set[str] = set()
    processed: set[str] = set()
    rows = Event.objects.filter(run_id=run_id, kind__in=("publish", "process")).exclude(message_id="")
    for message_id, kind in rows.values_list("message_id", "kind").iterator(chunk_size=5000):
        (published if kind == "publish" else processed).add(message_id)
    return len(published - processed)
