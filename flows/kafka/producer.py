"""The run's keyed producer: sends numbered messages and records where the broker put each.

A message's value carries its id, key, per-key sequence number and publish time, padded to
the requested size, so any consumer can tell which message it holds and how long it took
from publish to processing without a side channel.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..context import RunContext
from .clients import producer_config

PRODUCER = "producer"
# Waiting for the queue to drain when librdkafka's local buffer is full.
_FULL_QUEUE_POLL_S = 0.005
_SERVE_POLL_S = 0.05


@dataclass(frozen=True)
class Payload:
    message_id: str
    key: str
    seq: int  # 1-based position of this message among its key's messages
    published_ms: float  # run clock (RunContext.elapsed_ms) when it was produced


def message_id(n: int) -> str:
    return f"m-{n}"


def key_names(keys: int) -> list[str]:
    return [f"key-{k}" for k in range(1, keys + 1)]


def plan(n: int, keys: list[str]) -> tuple[str, str, int]:
    """Message ``n`` (1-based): its id, key (round robin over the keys) and per-key sequence."""
    return message_id(n), keys[(n - 1) % len(keys)], (n - 1) // len(keys) + 1


def encode(payload: Payload, size: int) -> bytes:
    head = f"{payload.message_id}|{payload.key}|{payload.seq}|{payload.published_ms:.3f}|".encode()
    return head + b"." * (size - len(head)) if size > len(head) else head


def decode(value: bytes) -> Payload:
    mid, key, seq, published, _ = value.split(b"|", 4)
    return Payload(mid.decode(), key.decode(), int(seq), float(published))


class KeyedProducer:
    """Produces on the calling thread; a poller thread serves delivery reports as they arrive.

    Serving reports only between sends would stamp each report when the *next* message is
    sent, so a slow rate would show up as a slow broker.
    """

    def __init__(self, ctx: RunContext, bootstrap: str, topic: str, topic_label: str, *, keys: int,
                 message_bytes: int, acks: str = "all", idempotent: bool = False, **extra: Any) -> None:
        from confluent_kafka import Producer

        self.ctx = ctx
        self.topic = topic
        self.topic_label = topic_label
        self.keys = key_names(keys)
        self.message_bytes = message_bytes
        self.config = producer_config(bootstrap, acks=acks, idempotent=idempotent, **extra)
        self._producer = Producer(self.config)
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._serve, name=f"kafka-producer-{ctx.run_id}", daemon=True)
        self._poller.start()
        self.sent = 0
        self.failed = 0
        # message id → (partition, offset or None when acks=0 gives no offset back)
        self.placements: dict[str, tuple[int, int | None]] = {}
        # partition → 1 + the highest offset a delivery report confirmed
        self.end_offsets: dict[int, int] = {}

    def send(self, n: int) -> None:
        mid, key, seq = plan(n, self.keys)
        value = encode(Payload(mid, key, seq, self.ctx.elapsed_ms()), self.message_bytes)
        report = partial(self._delivered, mid, key, time.perf_counter())
        while True:
            try:
                self._producer.produce(self.topic, value, key.encode(), on_delivery=report)
                break
            except BufferError:
                self._producer.poll(_FULL_QUEUE_POLL_S)
        self.sent += 1

    def flush(self, timeout: float = 30.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise TimeoutError(f"{left} messages were still undelivered after {timeout:g} s")

    def close(self) -> None:
        self._closed.set()
        self._poller.join(5.0)

    def _serve(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(_SERVE_POLL_S)

    def _delivered(self, mid: str, key: str, started: float, err: Any, msg: Any) -> None:
        waited_ms = round((time.perf_counter() - started) * 1000.0, 3)
        if err is not None:
            self.failed += 1
            self.ctx.emit("error", PRODUCER, mid, topic=self.topic, key=key, reason=f"produce failed: {err.str()}")
            return
        partition, offset = msg.partition(), msg.offset()
        known = offset if offset is not None and offset >= 0 else None  # acks=0: no offset comes back
        self.placements[mid] = (partition, known)
        if known is not None and known + 1 > self.end_offsets.get(partition, 0):
            self.end_offsets[partition] = known + 1
        self.ctx.emit("publish", PRODUCER, mid, topic=self.topic, partition=partition, offset=known, key=key,
                      perceived_ms=waited_ms)
        self.ctx.emit("route", f"topic:{self.topic_label}/p{partition}", mid, topic=self.topic, partition=partition,
                      offset=known, key=key)
