"""What a user does by hand to a Kafka run, shared by both Kafka workflows.

*Publish*: one record with the user's key through the run's own producer, so librdkafka's
murmur2 partitioner (the Java client's) picks the partition, and the delivery report says
where the broker stored it. *Slow*: a consumer spends extra time on every record, so its
lag (end offset − committed or read offset) grows while messages keep coming.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..params import Param, ParamError, int_param
from ..registry import action

if TYPE_CHECKING:
    from ..context import RunContext
    from .producer import KeyedProducer

# Kafka allows far longer keys; a hand-typed key this long is a mistake, and every event carries it.
KEY_MAX_BYTES = 200
VALUE_MAX_CHARS = 10_000
# How long Publish waits for the delivery report, so its answer can say where the record landed.
REPORT_WAIT_S = 1.0
# A slowed consumer looks at its delay this often, so speeding it up takes effect at once.
DAWDLE_SLICE_S = 0.05


NO_KEY = "give a key: murmur2(key) mod partitions picks the partition"


def _key_fits(key: str) -> None:
    if not key:
        raise ParamError(NO_KEY)
    size = len(key.encode())
    if size > KEY_MAX_BYTES:
        raise ParamError(f"key too long: {size} bytes of UTF-8, at most {KEY_MAX_BYTES}")


PUBLISH_PARAMS = {
    # The byte bound is the check's; the character bound only stops absurd requests early.
    "key": Param("text", "", f"Record key (1 to {KEY_MAX_BYTES} bytes of UTF-8): murmur2(key) mod partitions "
                 "picks its partition", max_length=KEY_MAX_BYTES * 4, check=_key_fits, label="Key"),
    "value": Param("text", "", f"Record value (optional, at most {VALUE_MAX_CHARS} characters); the run's "
                   "header (message id, key, send time) goes first", max_length=VALUE_MAX_CHARS, label="Value"),
}
SLOW_PARAMS = {
    "delay_ms": int_param(500, 0, 5000, "Extra time spent on every record (ms); 0 = back to full speed",
                          label="Delay per record (ms)"),
}


def dawdle(delay_ms: Callable[[], int], stop: threading.Event) -> None:
    """Hold a slowed consumer for its delay, in slices, so a change of speed or a stop counts at once."""
    began = time.monotonic()
    while not stop.is_set():
        left = delay_ms() / 1000.0 - (time.monotonic() - began)
        if left <= 0:
            return
        stop.wait(min(left, DAWDLE_SLICE_S))


class HandPublishing:
    """The *Publish* action and the delivery reports it needs served; mixed into a Kafka workflow."""

    ctx: RunContext
    p: dict[str, Any]
    producer: KeyedProducer

    @action("Publish", hands_on=True, params=PUBLISH_PARAMS)
    def on_publish(self, target: str, key: str, value: str = "") -> dict[str, Any]:
        from .partitioner import partition_for

        producer = self.producer
        mid = producer.send_by_hand(key, value)
        try:
            self.ctx.wait_until(lambda: producer.reported(mid, 0.01), REPORT_WAIT_S, f"the delivery report of {mid}",
                                step=0, tend=False)
        except TimeoutError:
            return {"result": f"{mid} sent with key {key!r}; the broker has not confirmed it yet", "message_id": mid}
        if mid not in producer.placements:
            return {"result": f"{mid} with key {key!r} was refused: see its error event", "message_id": mid}
        partition, offset = producer.placements[mid]
        partitions = self.p["partitions"]
        hashed = partition_for(key.encode(), partitions)
        where = f"at offset {offset}" if offset is not None else "(acks=0: no offset comes back)"
        return {"result": f"{mid} with key {key!r} stored in partition {partition} {where}; "
                          f"murmur2(key) mod {partitions} = {hashed}",
                "message_id": mid, "partition": partition, "offset": offset}

    def check_action(self, name: str, target: str, params: dict[str, Any]) -> dict[str, str]:
        if name == "publish" and not params.get("key"):
            return {"key": NO_KEY}
        return super().check_action(name, target, params)  # type: ignore[misc]

    def tick(self) -> None:
        super().tick()  # type: ignore[misc]
        producer = getattr(self, "producer", None)
        if producer is not None:
            producer.serve(0)  # delivery reports of hand-published records, as soon as the run looks
