"""The run's keyed producer: sends numbered messages and records where the broker put each.

A message's value carries its id, key, per-key sequence number and publish time, padded to
the requested size, so any consumer can tell which message it holds and how long it took
from publish to processing without a side channel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..context import RunContext
from .clients import producer_config

PRODUCER = "producer"
# Waiting for the queue to drain when librdkafka's local buffer is full.
_FULL_QUEUE_POLL_S = 0.005
_SERVE_POLL_S = 0.05
# Unpaced, the producer serves its delivery reports, and runs ``between`` (the run's actions),
# once per this many sends (paced, it does both while it waits): often enough to answer an
# action within a millisecond or two. Each poll lets go of the GIL, and the run's other threads
# (its reader) take it: polling after every send made the producer queue behind them once per message.
SERVE_EVERY = 64


class Payload(NamedTuple):
    message_id: str
    key: str
    seq: int  # 1-based position of this message among its key's messages
    published_ms: float  # run clock (RunContext.elapsed_ms) when it was produced


def partition_actor(topic_label: str, partition: int) -> str:
    """The actor a partition is in events: where ``route`` puts a message and ``deliver`` takes it from."""
    return f"topic:{topic_label}/p{partition}"


def message_id(n: int) -> str:
    return f"m-{n}"


def key_names(keys: int) -> list[str]:
    return [f"key-{k}" for k in range(1, keys + 1)]


def plan(n: int, keys: list[str]) -> tuple[str, str, int]:
    """Message ``n`` (1-based): its id, key (round robin over the keys) and per-key sequence."""
    return message_id(n), keys[(n - 1) % len(keys)], (n - 1) // len(keys) + 1


def _quote(key: str) -> str:
    # A key typed by hand may hold the header's separator; the run's own keys never do.
    return key.replace("%", "%25").replace("|", "%7C")


def _unquote(key: str) -> str:
    return key.replace("%7C", "|").replace("%25", "%")


def encode(payload: Payload, size: int, body: bytes = b"") -> bytes:
    """The header, then ``body`` (a hand-published value) or padding up to ``size`` bytes."""
    key = payload.key
    if "%" in key or "|" in key:
        key = _quote(key)
    head = f"{payload.message_id}|{key}|{payload.seq}|{payload.published_ms:.3f}|".encode()
    if body:
        return head + body
    padding = size - len(head)
    return head + b"." * padding if padding > 0 else head


_payload = Payload._make  # skips NamedTuple's keyword handling: decode runs twice per message


def decode(value: bytes) -> Payload:
    mid, key, seq, published, _ = value.split(b"|", 4)
    text = key.decode()
    return _payload((mid.decode(), _unquote(text) if "%" in text else text, int(seq), float(published)))


def head_of(value: bytes) -> bytes:
    """The message id's bytes at the head of a value, without decoding the rest."""
    return value[:value.index(b"|")]


def message_id_of(value: bytes) -> str:
    return head_of(value).decode()


def number_of(message_id: str) -> int:
    return int(message_id.rpartition("-")[2])


def unplanned(message_id: str, plan: int | None) -> dict[str, bool]:
    """``{"planned": False}`` for a message beyond the run's ``plan`` of scripted ones (sent by hand)."""
    return {"planned": False} if plan is not None and number_of(message_id) > plan else {}


class KeyedProducer:
    """Produces on the calling thread, which also serves the delivery reports.

    Between paced sends the thread waits *in* ``poll``, so a report is handled the moment it
    arrives: serving reports only at the next send would stamp them late, and a slow rate
    would show up as a slow broker. No second thread competes for the recorder's lock.
    """

    def __init__(self, ctx: RunContext, bootstrap: str, topic: str, topic_label: str, *, keys: int,
                 message_bytes: int, acks: str = "all", idempotent: bool = False, **extra: Any) -> None:
        from confluent_kafka import Producer

        self.ctx = ctx
        self.topic = topic
        self.topic_label = topic_label
        self.keys = key_names(keys)
        self._key_bytes = [k.encode() for k in self.keys]
        self.hand_keys: list[str] = []  # keys first sent by hand, in order, beyond the run's own
        self._last_seq: dict[str, int] = {}
        self.message_bytes = message_bytes
        self.config = producer_config(bootstrap, acks=acks, idempotent=idempotent, **extra)
        self._producer = Producer(self.config)
        self.sent = 0
        self.failed = 0
        self.refused: set[str] = set()  # ids whose delivery report was an error
        self.confirmed = 0  # messages whose delivery report was a success
        # Where each message sent by hand landed, for the Publish action's answer: id → (partition,
        # offset or None when acks=0 gives no offset back). The run's own messages are only counted:
        # nothing asks where one of them landed, and a slot each would be a million at the bound.
        self.placements: dict[str, tuple[int, int | None]] = {}
        # partition → 1 + the highest offset a delivery report confirmed
        self.end_offsets: dict[int, int] = {}
        self._untraced = ctx.untraced_test()
        # A sampling run's untraced messages whose reports were served since the last tally, per partition.
        self._routed: dict[int, int] = {}

    def send_all(self, count: int, rate: float, between: Callable[[], None] | None = None) -> None:
        """Send messages 1..count at ``rate`` per second (0 = at once), serving reports meanwhile.

        ``between`` runs between sends and while waiting (e.g. to take fault-injection actions).
        """
        interval = 1.0 / rate if rate > 0 else 0.0
        next_at = time.monotonic()
        for n in range(1, count + 1):
            while interval and (delay := next_at - time.monotonic()) > 0:
                self.serve(min(delay, _SERVE_POLL_S))
                if between is not None:
                    between()
            if interval:
                next_at = max(next_at + interval, time.monotonic() - interval)
                self.ctx.check()
            elif not (n - 1) % SERVE_EVERY:  # unpaced: a cancel is seen within SERVE_EVERY sends (well under 1 ms)
                self.ctx.check()
                if between is not None:
                    between()
            self.send(n, serve=bool(interval) or not n % SERVE_EVERY)

    def send(self, n: int, serve: bool = True) -> None:
        """Message ``n``; ``serve``: handle the delivery reports that came meanwhile."""
        mid, key, seq = plan(n, self.keys)
        self._last_seq[key] = seq
        value = encode(Payload(mid, key, seq, self.ctx.elapsed_ms()), self.message_bytes)
        self._produce(value, self._key_bytes[(n - 1) % len(self._key_bytes)], serve)

    def send_by_hand(self, key: str, body: str = "") -> str:
        """One message with the user's key (and value), numbered after everything sent so far; its id.

        Never waits for the broker: the delivery report records where it landed.
        """
        mid = message_id(self.sent + 1)
        seq = self._last_seq[key] = self._last_seq.get(key, 0) + 1
        if key not in self.keys and key not in self.hand_keys:
            self.hand_keys.append(key)
        value = encode(Payload(mid, key, seq, self.ctx.elapsed_ms()), self.message_bytes, body.encode())
        self._produce(value, key.encode(), delivered=self._delivered_by_hand)
        return mid

    def all_keys(self) -> list[str]:
        return [*self.keys, *self.hand_keys]

    def _produce(self, value: bytes, key_bytes: bytes, serve: bool = True,
                 delivered: Callable[[Any, Any], None] | None = None) -> None:
        # One bound callback for every scripted message: the report finds id, key and send time in the value.
        on_delivery = self._delivered if delivered is None else delivered
        while True:
            try:
                self._producer.produce(self.topic, value, key_bytes, on_delivery=on_delivery)
                break
            except BufferError:
                self.ctx.check()  # a full local queue also fills up when the broker is gone
                self._poll(_FULL_QUEUE_POLL_S)
        self.sent += 1
        if serve:
            self._poll(0)

    def serve(self, seconds: float) -> None:
        """Wait up to ``seconds`` for delivery reports and handle them as they come."""
        self.ctx.check()
        self._poll(seconds)

    def _poll(self, seconds: float) -> int:
        """librdkafka's poll (it runs ``_delivered`` per report), then the tally of what it counted."""
        left = self._producer.poll(seconds)
        if self._routed:
            self._tally_routed()
        return left

    def _tally_routed(self) -> None:
        routed, tally = self._routed, self.ctx.tally
        served = sum(routed.values())
        self.confirmed += served
        tally(PRODUCER, PRODUCER, "publish", served)
        for partition, n in routed.items():
            tally(PRODUCER, f"topic:{self.topic_label}/p{partition}", "route", n)
        routed.clear()

    def reported(self, mid: str, seconds: float) -> bool:
        """Serve reports for up to ``seconds``; whether ``mid``'s has come (stored or refused)."""
        if mid not in self.placements and mid not in self.refused:
            self.serve(seconds)
        return mid in self.placements or mid in self.refused

    def flush(self, timeout: float = 30.0) -> None:
        # In short slices, so a cancelled run (its broker died) stops waiting at once.
        self.ctx.wait_until(self._flushed, timeout, "the delivery reports of every message sent", step=0)

    def _flushed(self) -> bool:
        left = self._producer.flush(_SERVE_POLL_S)
        if self._routed:
            self._tally_routed()
        return left == 0

    def _delivered_by_hand(self, err: Any, msg: Any) -> None:
        """A hand-published message's report: also where it landed, for the Publish action."""
        if err is None:
            offset = msg.offset()
            self.placements[message_id_of(msg.value())] = (
                msg.partition(), offset if offset is not None and offset >= 0 else None)
        self._delivered(err, msg)

    def _delivered(self, err: Any, msg: Any) -> None:
        value = msg.value()
        if err is not None:
            payload = decode(value)
            self.failed += 1
            self.refused.add(payload.message_id)
            self.ctx.emit("error", PRODUCER, payload.message_id, topic=self.topic, key=payload.key,
                          reason=f"produce failed: {err.str()}")
            return
        # Runs once per message: the bookkeeping is the id's bytes, its partition's end offset
        # and a count; the rest of the header only a traced message's events need.
        head = head_of(value)
        partition, offset = msg.partition(), msg.offset()
        ends = self.end_offsets
        if offset is not None and offset >= ends.get(partition, 0):  # acks=0: no offset comes back (-1)
            ends[partition] = offset + 1
        if self._untraced(head) or not self.ctx.traced(head.decode()):
            # A sampling run counts a plain message (and its events), tallied after this poll (``_poll``).
            self._routed[partition] = self._routed.get(partition, 0) + 1
            return
        self.confirmed += 1
        known = offset if offset is not None and offset >= 0 else None
        payload = decode(value)
        mid, key, waited_ms = payload.message_id, payload.key, round(self.ctx.elapsed_ms() - payload.published_ms, 3)
        topic = self.topic
        self.ctx.emit_many([
            ("publish", PRODUCER, mid, 1, False,
             {"topic": topic, "partition": partition, "offset": known, "key": key, "perceived_ms": waited_ms}),
            ("route", partition_actor(self.topic_label, partition), mid, 1, False,
             {"topic": topic, "partition": partition, "offset": known, "key": key}),
        ])
