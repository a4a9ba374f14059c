"""The Kafka lane: the caller produces with ``acks=all``; one consumer-group member fulfils.

The caller's wait ends with the delivery report, i.e. once every in-sync replica stored
the order. The topic ``orders`` has one partition, so one member of the group
``fulfilment`` owns it and handles one order at a time, committing after each one
(``enable.auto.commit`` false). What each Kafka behaviour looks like here:

* a crashed handling (``flaky``): the member does not commit, it closes its consumer and is
  gone; a new member joins the group and resumes from the last committed offset, so the
  crashed order is delivered again (a duplicate whose reason and ``cause_seq`` the crash set);
* the outage (``down``): the member commits what it handled and leaves; the orders keep
  landing in the partition (consumer lag) until a new member joins the same group and reads
  on from the committed offset.

A member leaves with LeaveGroup (``close``) rather than by timing out, so its successor's
join costs one JoinGroup round (about half the session timeout on Tansu, the initial
rebalance delay on Kafka) instead of a whole session timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..lane import CallFailed, HandlingCrashed, Lane

log = logging.getLogger(__name__)

TOPIC_LABEL = "orders"
GROUP_LABEL = "fulfilment"
PARTITIONS = 1
# librdkafka gives up on a record after this and reports the failure; the caller waits a little longer.
DELIVERY_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 20.0  # broker_counts: a crashed member's successor must join and catch up first
POLL_S = 0.1
# Said of a second delivery no crash announced: a member left with the order handled, not committed.
REDELIVERED = "uncommitted offset after rebalance"


class KafkaLane(Lane):
    protocol = "kafka"
    sync = False
    broker = "kafka"
    backlog_source = "consumer lag: the partition's end offset minus the group's committed offset, from the broker"
    backlog_actor = f"topic:{TOPIC_LABEL}/p0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._producer: Any = None
        self._probe: Any = None
        self._member: FulfilmentMember | None = None
        self._members = 0  # members started so far (names member-1, member-2, ...)
        self._down = True
        self._lock = threading.Lock()

    # -- the broker and the caller --------------------------------------------------------

    def setup(self) -> None:
        from confluent_kafka import Producer

        from ...kafka.clients import producer_config, topic_name
        from ...kafka.offsets import LagProbe
        from ...kafka.teardown import create_run_topic

        self.bootstrap = self.ctx.broker("kafka").bootstrap_servers
        self.topic = topic_name(self.ctx.namespace, TOPIC_LABEL)
        self.group_id = topic_name(self.ctx.namespace, GROUP_LABEL)
        # Deleted with the group when the run ends; the broker's last figures go into the result.
        create_run_topic(self.ctx.run_id, self.bootstrap, self.topic, PARTITIONS, [self.group_id])
        self._producer = Producer(producer_config(
            self.bootstrap, acks="all", client_id="flows-sva-caller",
            **{"linger.ms": 0, "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000)}))
        self._probe = LagProbe(self.bootstrap, self.topic, PARTITIONS, self.group_id)

    def hand_over(self, order: str) -> dict[str, Any]:
        from confluent_kafka import KafkaException

        report: list[tuple[Any, Any]] = []
        try:
            self._producer.produce(self.topic, order.encode(), order.encode(),
                                   on_delivery=lambda err, msg: report.append((err, msg)))
        except (BufferError, KafkaException) as exc:
            raise CallFailed(f"produce refused: {exc}") from None
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S + 2.0
        while not report:  # the report is served on this thread, inside poll, as soon as it comes
            self.ctx.check()
            if time.monotonic() >= deadline:
                raise CallFailed(f"no delivery report within {DELIVERY_TIMEOUT_S + 2.0:g} s")
            self._producer.poll(POLL_S)
        err, msg = report[0]
        if err is not None:
            raise CallFailed(f"produce failed: {err.str()}", code=err.name())
        placed = {"topic": self.topic, "partition": msg.partition(), "offset": msg.offset()}
        # The broker stored it before the caller heard so: the route comes first.
        self.emit("route", f"topic:{TOPIC_LABEL}/p{msg.partition()}", order, **placed)
        return {**placed, "acks": "all"}

    # -- the downstream ------------------------------------------------------------------

    def start_downstream(self) -> None:
        with self._lock:
            self._down = False
            member = self._spawn()
        self.ctx.wait_until(member.ready.is_set, JOIN_TIMEOUT_S, f"{member.actor} to be assigned the partition",
                            wake=member.ready)

    def stop_downstream(self) -> None:
        with self._lock:
            self._down = True
            member, self._member = self._member, None
        if member is not None:
            member.stop(STOP_TIMEOUT_S)

    def _spawn(self) -> FulfilmentMember:
        """A new member of the group (under the lock); it joins on its own thread."""
        self._members += 1
        self._member = FulfilmentMember(self, self._members)
        self._member.start()
        return self._member

    def replace(self, crashed: FulfilmentMember) -> None:
        """A member crashed: a new one joins and resumes from the committed offset (unless the downstream is down)."""
        with self._lock:
            if not self._down and self._member is crashed and not self.ctx.cancelled.is_set():
                self._spawn()

    # -- the broker's figures ------------------------------------------------------------

    def backlog(self) -> int | None:
        try:
            return self._probe.lag() if self._probe is not None else None
        except Exception as exc:  # noqa: BLE001 - a sample missed is not a failed run
            log.warning("kafka lane: lag not read: %s", exc)
            return None

    def broker_counts(self) -> dict[str, Any]:
        """End offset and committed offset from the broker, once the group caught up (or gave up trying)."""
        from ...kafka.offsets import lag

        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            ends, committed = self._probe.read()
            behind = sum(lag(ends, committed).values())
            if not behind or time.monotonic() >= deadline or self._member is None:
                break
            self.ctx.sleep(POLL_S)
        return {
            "topic": self.topic,
            "group": self.group_id,
            "end_offset": sum(ends.values()),
            "committed_offset": sum(committed.values()),
            "lag": behind,
            "accepted": len(self.tally.accepted),
            "members": self._members,
        }

    def teardown(self) -> None:
        self.stop_downstream()
        if self._producer is not None:
            self._producer.flush(1.0)
        if self._probe is not None:
            self._probe.close()


class FulfilmentMember(threading.Thread):
    """One member of the group ``fulfilment``: poll, fulfil, commit, one order at a time."""

    def __init__(self, lane: KafkaLane, number: int) -> None:
        super().__init__(name=f"sva-kafka-member-{number}", daemon=True)
        self.lane = lane
        self.member = f"member-{number}"
        self.actor = f"group:{GROUP_LABEL}/{self.member}"
        self.ready = threading.Event()  # set once the partition is assigned
        self._stopping = threading.Event()
        self._why_leaving = "left the group"  # what its revoke says

    def stop(self, timeout: float) -> None:
        """Finish the order in hand (and commit it), then leave the group."""
        self._stopping.set()
        self.join(timeout)

    def _attrs(self) -> dict[str, Any]:
        return {"group": GROUP_LABEL, "member": self.member, "topic": self.lane.topic}

    def run(self) -> None:
        from confluent_kafka import Consumer

        from ...kafka.clients import group_consumer_config

        lane, consumer = self.lane, None
        try:
            consumer = Consumer(group_consumer_config(lane.bootstrap, lane.group_id, client_id=f"flows-sva-{self.member}"))
            consumer.subscribe([lane.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self._stopping.is_set() and not lane.ctx.cancelled.is_set():
                message = consumer.poll(POLL_S)
                if message is None or not self._usable(message):
                    continue
                order = message.value().decode()
                at = {"partition": message.partition(), "offset": message.offset(), **self._attrs()}
                try:
                    lane.fulfil(order, self.actor, REDELIVERED, **at)
                except HandlingCrashed:
                    # A crashed process commits nothing: close (leaving the group at once) and let a successor in.
                    consumer, closing = None, consumer
                    self._why_leaving = "member crashed"
                    closing.close()
                    lane.replace(self)
                    return
                self._commit(consumer, message)
        except Exception as exc:  # the member dies; the run shows why
            log.exception("%s failed", self.actor)
            lane.emit("error", self.actor, reason=f"{type(exc).__name__}: {exc}", **self._attrs())
        finally:
            if consumer is not None:
                consumer.close()

    def _usable(self, message: Any) -> bool:
        from confluent_kafka import KafkaError

        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            self.lane.emit("error", self.actor, reason=f"consume failed: {error.str()}", **self._attrs())
        return error is None

    def _commit(self, consumer: Any, message: Any) -> None:
        from confluent_kafka import KafkaException

        try:
            done = consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            # Not committed: a successor gets this order again (a duplicate with the default reason).
            self.lane.emit("error", self.actor, message.value().decode(), reason=f"commit failed: {exc}",
                           **self._attrs())
            return
        offsets = {str(tp.partition): tp.offset for tp in done if tp.error is None}
        self.lane.emit("commit", self.actor, message.value().decode(), offsets=offsets,
                       partitions=sorted(int(p) for p in offsets), why="after processing", **self._attrs())

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        got = sorted(tp.partition for tp in partitions)
        self.lane.emit("assign", self.actor, partitions=got, **self._attrs())
        if got:
            self.ready.set()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        gone = sorted(tp.partition for tp in partitions)
        if gone:
            self.lane.emit("revoke", self.actor, partitions=gone, why=self._why_leaving, **self._attrs())
