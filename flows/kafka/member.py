"""One consumer-group member: its own confluent-kafka Consumer, polled on its own thread.

Consuming is receive → handle → commit, and where the commit sits is the lesson:

* ``after`` (at-least-once): handle, then commit every ``commit_every`` handled messages
  (and before giving partitions up in a rebalance or at shutdown). A crash in between
  leaves handled messages uncommitted; the group's next owner of the partition resumes
  from the last committed offset and gets them **again** (duplicates).
* ``before`` (at-most-once): take a batch, commit it, then handle it. A crash in between
  leaves committed messages unhandled; nobody gets them again (**lost**).
* ``auto``: handle, store the offset, and let the client commit stored offsets on its
  ``auto.commit.interval.ms`` timer. A crash re-delivers what was handled since the last tick.

A crash closes the consumer without committing (the member leaves the group at once, so
the group rebalances without waiting for the session timeout). In auto mode the stored
offsets are first put back to the last committed ones, because ``close()`` would otherwise
commit them, which a crashed process never does.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import inbox
from ..context import RunContext
from .clients import group_consumer_config, poll_batch
from .hands import dawdle
from .ledger import GroupLedger
from .offsets import cached_end_offset, cached_end_offsets
from .producer import Payload, decode, message_id_of, number_of, partition_actor

log = logging.getLogger(__name__)

POLL_S = 0.1
LEFT = "left the group"  # a revoke's why when the member was removed by hand
COMMIT_MODES = ("after", "before", "auto")
_OFFSET_INVALID = -1001
# Message ids kept beyond the uncommitted ones before forgetting the committed (amortises the sweep).
_KEEP_IDS = 1000


class Received(NamedTuple):
    """A delivery as the member holds it until handled; ``attrs`` None: a plain one, counted not recorded."""

    message_id: str
    attempt: int
    payload: Payload | None
    attrs: dict[str, Any] | None


class PlainCounts:
    """One batch's plain deliveries and processings outside a sampling run's sample, tallied per batch.

    Contracts ("Fidelity"): first deliveries of planned messages with no anomaly may be counted
    per edge instead of recorded; the member skips building their attrs altogether.
    """

    def __init__(self, ctx: RunContext, actor: str, topic_label: str) -> None:
        self.ctx, self.actor, self.topic_label = ctx, actor, topic_label
        self._delivered: dict[int, int] = {}
        self._processed = 0

    def delivered(self, partition: int) -> None:
        self._delivered[partition] = self._delivered.get(partition, 0) + 1

    def processed(self) -> None:
        self._processed += 1

    def flush(self) -> None:
        for partition, n in self._delivered.items():
            self.ctx.tally(partition_actor(self.topic_label, partition), self.actor, "deliver", n)
        if self._processed:
            self.ctx.tally(self.actor, self.actor, "process", self._processed)
        self._delivered, self._processed = {}, 0


@dataclass(frozen=True)
class MemberSettings:
    bootstrap: str
    topic: str
    commit_mode: str
    commit_every: int
    strategy: str
    process_ms: int
    idempotent: bool
    plan: int | None = None  # messages the run scripted (later ids were published by hand); None: all
    topic_label: str = "orders"  # the topic's short name in actor names (``topic:orders/p0``)


class Member(threading.Thread):
    def __init__(self, ctx: RunContext, ledger: GroupLedger, settings: MemberSettings, number: int,
                 crash_at: int = 0, how: str = "") -> None:
        super().__init__(name=f"kafka-{ledger.label}-member-{number}", daemon=True)
        self.ctx = ctx
        self.ledger = ledger
        self.settings = settings
        self.number = number
        self.member = f"member-{number}"
        self.actor = f"group:{ledger.label}/{self.member}"
        self.crash_at = crash_at
        self.how = how  # how it came to join, when not with the run: "added by hand", "restarted"
        self.delay_ms = 0  # the Slow action's extra time per message
        self.crash_reason = ""
        self.state = "starting"  # starting | live | crashed | stopped | failed
        self.assigned: set[int] = set()
        self.final_partitions: list[int] = []  # what it owned when it stopped or crashed
        self.assign_calls = 0
        self.done = 0  # messages handled
        self.busy = False  # between taking a batch and finishing it
        # Set once its consumer is closed, so out of the group (a crash says "crashed" a moment earlier).
        self.left = threading.Event()
        self._crash_requested = threading.Event()
        self._stop_requested = threading.Event()
        self._leaving = ""  # why the consumer is closing: crash | shutdown | left
        self._pending: dict[int, int] = {}  # partition → next offset to commit (handled, not committed)
        self._uncommitted: list[tuple[int, int]] = []
        self._message_of: dict[tuple[int, int], str] = {}  # (partition, offset) → message id, as delivered
        self._last_committed: dict[int, int] = {}
        self._used_db = False
        self._leaving_by_hand = False
        self._consumer: Any = None

    # -- control (any thread) -----------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "live")

    @property
    def uncommitted(self) -> int:
        return len(self._uncommitted)

    @property
    def leaving(self) -> bool:
        """On its way out of the group (crashed, stopped, asked to leave), its consumer not closed yet."""
        return (not self.alive or self._leaving_by_hand) and not self.left.is_set()

    @property
    def crash_pending(self) -> bool:
        return self._crash_requested.is_set()

    def request_crash(self, reason: str) -> None:
        self.crash_reason = self.crash_reason or reason
        self._crash_requested.set()

    def request_stop(self) -> None:
        self._stop_requested.set()

    def request_leave(self) -> None:
        """Leave the group cleanly while the run goes on (committing what it handled first)."""
        self._leaving_by_hand = True
        self._stop_requested.set()

    # -- the thread ---------------------------------------------------------------------

    def run(self) -> None:
        from confluent_kafka import Consumer

        s = self.settings
        extra: dict[str, Any] = {"client.id": f"flows-{self.ledger.label}-{self.member}"}
        if s.commit_mode == "auto":
            extra["on_commit"] = self._on_commit
        try:
            self._consumer = Consumer(group_consumer_config(s.bootstrap, self.ledger.group_id, strategy=s.strategy,
                                                            auto_commit=s.commit_mode == "auto", **extra))
            self.ledger.joined(self.member, self.how)
            self._consumer.subscribe([s.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                     on_lost=self._on_lost)
            self.state = "live"
            self._loop()
        except Exception as exc:  # the member dies; the run reports it
            log.exception("%s failed", self.actor)
            self.state = "failed"
            self.ctx.emit("error", self.actor, group=self.ledger.label, member=self.member,
                          reason=f"{type(exc).__name__}: {exc}")
            self._close_quietly()
        finally:
            if self._used_db:
                from django.db import connection

                connection.close()

    def _loop(self) -> None:
        batch_size = self.settings.commit_every
        while True:
            if self._stop_requested.is_set():
                if self._crash_requested.is_set():
                    self._crash([])  # asked to crash but no message came: crash with nothing in hand
                else:
                    self._shutdown()
                return
            if self._crash_requested.is_set() and self._uncommitted:
                self._crash([])
                return
            messages = poll_batch(self._consumer, batch_size, POLL_S)
            if not messages:
                continue
            self.busy = True
            try:
                if self._handle_batch(messages):
                    return
            finally:
                self.busy = False

    def _handle_batch(self, messages: list[Any]) -> bool:
        """Receive, handle and commit one batch in the order the commit mode says; True if crashed."""
        self._forget_committed()
        records = [m for m in messages if self._usable(m)]
        plain = PlainCounts(self.ctx, self.actor, self.settings.topic_label)
        try:
            return self._handle_records(records, plain)
        finally:
            plain.flush()  # before the thread can be seen idle: a settled run's counts are whole

    def _handle_records(self, records: list[Any], plain: PlainCounts) -> bool:
        ends: dict[int, int | None] = {}  # one watermark look-up per partition per batch
        if self.settings.commit_mode == "before":
            handed = [self._deliver(m, ends, plain) for m in records]
            last: dict[int, int] = {}
            for m in records:
                last[m.partition()] = m.offset() + 1
            self._commit(last, "before processing")
            for i, (m, delivery) in enumerate(zip(records, handed)):
                if self._crash_due(before_handling=True):
                    self._crash([(r.partition(), r.offset()) for r in records[i:]])
                    return True
                self._handle(m, delivery, plain)
            return False
        auto, after, every = self.settings.commit_mode == "auto", self.settings.commit_mode == "after", \
            self.settings.commit_every
        for m in records:
            self._handle(m, self._deliver(m, ends, plain), plain)
            partition, offset = m.partition(), m.offset()
            self._pending[partition] = offset + 1
            self._uncommitted.append((partition, offset))
            if auto:
                self._store(partition, offset + 1)
            if self._crash_due(before_handling=False):
                self._crash([])
                return True
            if after and len(self._uncommitted) >= every:
                self._commit_pending("after processing")
        return False

    def _forget_committed(self) -> None:
        """Keep message ids only for what a crash or revoke could still bring back: the uncommitted.

        Between batches nothing else is in hand, so a long run holds ids for a commit's worth of
        messages rather than for every message it ever received.
        """
        known = self._message_of
        if len(known) > 2 * len(self._uncommitted) + _KEEP_IDS:
            self._message_of = {o: known[o] for o in self._uncommitted if o in known}

    def _usable(self, message: Any) -> bool:
        error = message.error()
        if error is None:
            return True
        from confluent_kafka import KafkaError

        if error.code() != KafkaError._PARTITION_EOF:
            self.ctx.emit("error", self.actor, group=self.ledger.label, member=self.member,
                          reason=f"consume failed: {error.str()}")
        return False

    def _crash_due(self, before_handling: bool) -> bool:
        if self._crash_requested.is_set():
            return True
        # crash_at counts handled messages: after handling the Nth (before its commit), or
        # in at-most-once mode while handling the Nth (after its commit).
        nth = self.done + 1 if before_handling else self.done
        if self.crash_at and nth == self.crash_at:
            self.crash_reason = self.crash_reason or f"crash_at={self.crash_at}"
            return True
        return False

    # -- receive and handle -------------------------------------------------------------

    def _deliver(self, message: Any, ends: dict[int, int | None], plain: PlainCounts) -> Received:
        """Count the delivery in the group's ledger; record it, or (a plain one outside the sample) count it."""
        partition, offset = message.partition(), message.offset()
        value = message.value()
        mid = message_id_of(value)
        if partition not in ends:
            ends[partition] = cached_end_offset(self._consumer, self.settings.topic, partition)
        end = ends[partition]
        delivery = self.ledger.delivered(partition, offset, self.member, end)
        self._message_of[(partition, offset)] = mid
        plan = self.settings.plan
        planned = plan is None or number_of(mid) <= plan
        if not delivery.duplicate and planned and not self.ctx.traced(mid):
            plain.delivered(partition)
            return Received(mid, delivery.attempt, None, None)
        payload = decode(value)
        attrs: dict[str, Any] = {"topic": self.settings.topic, "partition": partition, "offset": offset,
                                 "key": payload.key, "group": self.ledger.label, "member": self.member,
                                 "end_offset": end}
        if not planned:
            attrs["planned"] = False
        if delivery.duplicate:
            how = "crashed" if self.ledger.crashed_member(delivery.previous) else "gave the partition up"
            attrs["reason"] = delivery.reason
            attrs["previous_member"] = delivery.previous
            attrs["why"] = (f"{delivery.previous} {how} after receiving offset {offset} but before committing "
                            f"past it, so the group resumed partition {partition} from its last committed offset")
            if delivery.cause_seq:
                attrs["cause_seq"] = delivery.cause_seq
        self.ctx.emit("deliver", self.actor, mid, delivery.attempt, delivery.duplicate, **attrs)
        return Received(mid, delivery.attempt, payload, attrs)

    def _handle(self, message: Any, received: Received, plain: PlainCounts) -> None:
        mid, attempt, payload, attrs = received
        if self.settings.process_ms:
            self.ctx.cancelled.wait(self.settings.process_ms / 1000.0)
        slowed = self.delay_ms
        if slowed:
            dawdle(lambda: self.delay_ms, self._stop_requested)
        effect = self._apply(mid) if self.settings.idempotent else True
        self.ledger.processed_one(message.partition(), message.offset(), effect)
        self.done += 1
        if attrs is None:
            if effect:  # a plain message's plain processing: counted, like its delivery
                plain.processed()
                return
            # Suppressed by the inbox: an anomaly, recorded whatever the sample.
            payload = decode(message.value())
            attrs = {"topic": self.settings.topic, "partition": message.partition(), "offset": message.offset(),
                     "key": payload.key, "group": self.ledger.label, "member": self.member}
        extra: dict[str, Any] = {"effect": effect,
                                 "end_to_end_ms": round(self.ctx.elapsed_ms() - payload.published_ms, 3)}
        if slowed:
            extra["slowed_ms"] = slowed
        if self.settings.idempotent:
            extra["inbox"] = "applied" if effect else "already in the inbox: duplicate suppressed"
        self.ctx.emit("process", self.actor, mid, attempt, attempt > 1, **attrs, **extra)

    def _apply(self, message_id: str) -> bool:
        """The idempotent consumer's inbox, one per group: False if the group applied it already."""
        self._used_db = True
        return inbox.first_time(self.ctx.run_id, self.ledger.group_id, message_id)

    # -- commits --------------------------------------------------------------------------

    def _commit(self, offsets: dict[int, int], why: str) -> bool:
        if not offsets:
            return True
        from confluent_kafka import KafkaException, TopicPartition

        wanted = [TopicPartition(self.settings.topic, p, o) for p, o in sorted(offsets.items())]
        try:
            answered = self._consumer.commit(offsets=wanted, asynchronous=False)
        except KafkaException as exc:
            self.ctx.emit("error", self.actor, group=self.ledger.label, member=self.member, partitions=sorted(offsets),
                          reason=f"commit failed ({why}): {exc.args[0].str() if exc.args else exc}")
            return False
        done = {tp.partition: tp.offset for tp in answered if tp.error is None}
        for tp in answered:
            if tp.error is not None:
                self.ctx.emit("error", self.actor, group=self.ledger.label, member=self.member,
                              partitions=[tp.partition], reason=f"commit of partition {tp.partition} failed: {tp.error.str()}")
        self._committed(done, why)
        return len(done) == len(offsets)

    def _commit_pending(self, why: str, partitions: set[int] | None = None) -> None:
        todo = {p: o for p, o in self._pending.items() if partitions is None or p in partitions}
        if todo and self._commit(todo, why):
            for partition in todo:
                self._pending.pop(partition, None)
            self._uncommitted = [(p, o) for p, o in self._uncommitted if p not in todo]

    def _committed(self, offsets: dict[int, int], why: str) -> None:
        if not offsets:
            return
        self._last_committed.update(offsets)
        self.ledger.committed_by(offsets)
        self.ctx.emit("commit", self.actor, group=self.ledger.label, member=self.member, topic=self.settings.topic,
                      partitions=sorted(offsets), offsets={str(p): o for p, o in sorted(offsets.items())},
                      mode=self.settings.commit_mode, why=why)

    def _store(self, partition: int, offset: int) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.store_offsets(offsets=[TopicPartition(self.settings.topic, partition, offset)])

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        """Auto-commit results (served inside consume/close on this thread)."""
        from confluent_kafka import KafkaError

        if err is not None and err.code() != KafkaError._NO_OFFSET:
            self.ctx.emit("error", self.actor, group=self.ledger.label, member=self.member,
                          reason=f"auto-commit failed: {err.str()}")
        news = {tp.partition: tp.offset for tp in partitions
                if tp.error is None and tp.offset >= 0 and self._last_committed.get(tp.partition) != tp.offset}
        self._committed(news, "auto-commit timer")
        for partition, offset in news.items():
            if self._pending.get(partition, -1) <= offset:
                self._pending.pop(partition, None)
        self._uncommitted = [(p, o) for p, o in self._uncommitted if o >= self._last_committed.get(p, 0)]

    # -- rebalance callbacks (served inside consume/close on this thread) ------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        got = sorted(tp.partition for tp in partitions)
        self.assign_calls += 1
        self.assigned.update(got)
        self.ctx.emit("assign", self.actor, group=self.ledger.label, member=self.member, topic=self.settings.topic,
                      partitions=got, owned=sorted(self.assigned), strategy=self.settings.strategy,
                      incremental=self.settings.strategy == "cooperative-sticky")
        self.ledger.assigned(self.member, got)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._give_up(partitions, lost=False)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self._give_up(partitions, lost=True)

    def _give_up(self, partitions: list[Any], lost: bool) -> None:
        gone = sorted(tp.partition for tp in partitions)
        if not gone:
            return
        if not self._leaving and not lost and self.settings.commit_mode != "before":
            # A well-behaved member commits what it handled before the partitions move.
            self._commit_pending("before giving partitions up", set(gone))
        self.assigned.difference_update(gone)
        for partition in gone:
            self._pending.pop(partition, None)
        # Handled here, not committed, now someone else's: the group delivers them again because of this revoke
        # (a crashed member's crash event is their cause already).
        dropped = [] if self._leaving == "crash" else sorted(o for o in self._uncommitted if o[0] in gone)
        self._uncommitted = [(p, o) for p, o in self._uncommitted if p not in gone]
        why = "lost (session timed out)" if lost else {"crash": "member crashed", "shutdown": "shutdown",
                                                       "left": LEFT}.get(self._leaving, "rebalance")
        seq = self.ctx.emit("revoke", self.actor, self._only_message(dropped), group=self.ledger.label,
                            member=self.member, topic=self.settings.topic, partitions=gone,
                            owned=sorted(self.assigned), strategy=self.settings.strategy, why=why,
                            **self._affected(dropped))
        self._caused(dropped, seq)
        self.ledger.revoked(self.member, gone, stays=not self._leaving and not lost)

    # -- leaving --------------------------------------------------------------------------

    def _crash(self, committed_unhandled: list[tuple[int, int]]) -> None:
        owned = self.final_partitions = sorted(self.assigned)
        record = {
            "member": self.member,
            "reason": self.crash_reason or "crash requested",
            "partitions": owned,
            "handled_uncommitted": [list(o) for o in sorted(self._uncommitted)],
            "committed_unhandled": [list(o) for o in sorted(committed_unhandled)],
            "handled": self.done,
            "at_ms": round(self.ctx.elapsed_ms(), 3),
        }
        self.ledger.crashed(self.member, record)
        affected = sorted(self._uncommitted) + sorted(committed_unhandled)
        seq = self.ctx.emit("crash", self.actor, self._only_message(affected), group=self.ledger.label,
                            member=self.member, topic=self.settings.topic, partitions=owned,
                            uncommitted=record["handled_uncommitted"], unhandled=record["committed_unhandled"],
                            reason=record["reason"], mode=self.settings.commit_mode, **self._affected(affected))
        self._caused(sorted(self._uncommitted), seq)  # committed_unhandled are lost, not delivered again
        self._leaving = "crash"
        if self.settings.commit_mode == "auto":
            self._unstore(owned)
        self.state = "crashed"
        self._close_quietly()

    def _only_message(self, offsets: list[tuple[int, int]]) -> str:
        """The message id of an event that concerns exactly one message, else ''."""
        return self._message_of.get(offsets[0], "") if len(offsets) == 1 else ""

    def _affected(self, offsets: list[tuple[int, int]]) -> dict[str, Any]:
        """``message_ids``: the messages an event brings back (or loses), for the inspector's links."""
        ids = [self._message_of[o] for o in offsets if o in self._message_of]
        return {"message_ids": ids} if ids else {}

    def _caused(self, offsets: list[tuple[int, int]], seq: int) -> None:
        for offset in offsets:
            self.ledger.caused_by(offset, seq)

    def _unstore(self, partitions: list[int]) -> None:
        """Put stored offsets back to the last committed ones so close() commits nothing new."""
        from confluent_kafka import TopicPartition

        if partitions:
            self._consumer.store_offsets(offsets=[
                TopicPartition(self.settings.topic, p, self._last_committed.get(p, _OFFSET_INVALID)) for p in partitions])

    def _shutdown(self) -> None:
        self.final_partitions = sorted(self.assigned)
        # A cancelled run (its broker may be dead) does not block on a last synchronous commit.
        if self.settings.commit_mode != "before" and not self.ctx.cancelled.is_set():
            self._commit_pending("shutdown")
        self.ledger.saw_end_offsets(cached_end_offsets(self._consumer, self.settings.topic, self.assigned))
        self._leaving = "left" if self._leaving_by_hand else "shutdown"
        if self._leaving_by_hand:
            self.ledger.left(self.member)
        self.state = "stopped"
        self._close_quietly()

    def _close_quietly(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                consumer.close()  # sends LeaveGroup and waits for its answer
        except Exception:  # closing a consumer that already failed
            log.debug("%s: close failed", self.actor, exc_info=True)
        finally:
            self.left.set()
