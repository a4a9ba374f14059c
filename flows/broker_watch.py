"""A run's watch on its broker: a broker that dies mid-run fails the run within seconds.

An embedded broker run as a child process reports its own exit at once (a down listener on
the broker); an external one is probed with a TCP connect every ``PROBE_EVERY_S`` and
declared gone after ``PROBE_FAILURES`` failures in a row. Either way the run is cancelled
with the broker's sentence as the reason, which wakes a workflow blocked in a broker call
(every wait goes through the run context), and the runner reports that sentence instead of
whatever the workflow raised on its way out.

What the broker had confirmed and no consumer processed is *undelivered*, counted from the
events already recorded and reported as the run's ``lost``; what was published and never
confirmed is counted apart (``unconfirmed``): the broker may never have had it.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

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

    def broke(self, recheck: bool) -> bool:
        """Did the broker fail the run? With ``recheck`` (the run failed for a reason of its own),
        ask once more now: a workflow can hit a dead broker before the watch's next probe."""
        if self.failure is None and recheck and self.broker is not None:
            reason = self.broker.down_reason()
            if reason is None and not self.broker.embedded:
                try:
                    self.broker.probe(PROBE_TIMEOUT_S)
                except BrokerUnavailable as exc:
                    reason = str(exc)
            self.failure = reason
        return self.failure is not None

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
        undelivered, unconfirmed, published = undelivered_messages(self.ctx.run_id)
        error = self.failure or ""
        # A sampling run stored the events of its traced messages only; the rest were counted
        # per edge, which says how many but not which messages went where.
        fidelity = self.ctx.recorder.fidelity
        sampled = fidelity is not None and fidelity.sampling
        if published:
            error += f"; {_count(undelivered)} confirmed by the broker {_were(undelivered)} never processed"
        if unconfirmed:
            error += f" and {_count(unconfirmed)} published {_were(unconfirmed)} never confirmed"
        if sampled:
            error += (f"; the run was sampling ({fidelity.why}): losses are counted over its "
                      f"{_count(published)} traced whole, not over every message")
        return error, {**result, "broker_failure": self.failure, "undelivered": undelivered,
                       "unconfirmed": unconfirmed, "lost": undelivered, "losses_of": "traced" if sampled else "all"}


def _count(n: int) -> str:
    return f"{n} message{'' if n == 1 else 's'}"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


class Losses(NamedTuple):
    undelivered: int  # confirmed by the broker, owed to a consumer, never processed
    unconfirmed: int  # published, never confirmed
    published: int


def undelivered_messages(run_id: int) -> Losses:
    """What the run had published and lost, from the stored events.

    A message counts as confirmed when its ``publish`` event carries ``perceived_ms`` (the
    workflow recorded it once the broker confirmed it, as the Kafka producer does) or when its
    publisher recorded an ``ack`` for it (MQTT's PUBACK / PUBCOMP); it is owed to a consumer
    when the run recorded a ``route`` for it.
    """
    from .models import Event

    events = Event.objects.filter(run_id=run_id).exclude(message_id="")
    publishers = dict(events.filter(kind="publish").values_list("message_id", "actor").iterator(chunk_size=5000))
    confirmed = set(events.filter(kind="publish", attrs__has_key="perceived_ms")
                    .values_list("message_id", flat=True).iterator(chunk_size=5000))
    for actor, message_id in events.filter(kind="ack").values_list("actor", "message_id").iterator(chunk_size=5000):
        if publishers.get(message_id) == actor:
            confirmed.add(message_id)
    processed = set(events.filter(kind="process").values_list("message_id", flat=True).iterator(chunk_size=5000))
    routed = set(events.filter(kind="route").values_list("message_id", flat=True).iterator(chunk_size=5000))
    # Where the workflow records routing, a message no consumer's binding or filter matched was
    # never meant to be processed (e.g. an MQTT topic nobody subscribes to).
    owed = confirmed & routed if routed else confirmed
    return Losses(len(owed - processed), len(publishers.keys() - confirmed), len(publishers))
