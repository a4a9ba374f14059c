"""How many messages the broker itself says it holds for its clients, from its ``$SYS`` topics.

MQTT has no queue-depth query, but both brokers publish a count of what they keep: Mosquitto
its message store (every message until each subscriber acknowledged it, queued for absent
persistent sessions, plus retained messages), amqtt the messages in flight to clients and
those queued for absent sessions (plus retained ones). Taking the retained messages out
leaves what waits for subscribers: the broker's own side of a backlog, to cross-check a
count kept by the client. The count covers every client of the broker, so it is exact only
on a broker nobody else uses (the embedded ones).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .sys_counters import TICK_TOPIC, SysCounters

# name → $SYS topic; ``held`` adds the ``+`` ones and subtracts the ``-`` ones.
HELD_TOPICS = {
    "mosquitto": {"+stored": "$SYS/broker/store/messages/count",
                  "-retained": "$SYS/broker/retained messages/count"},
    "amqtt": {"+in_flight": "$SYS/broker/messages/inflight/out",
              "+stored": "$SYS/broker/messages/inflight/stored",
              "-retained": "$SYS/broker/messages/retained/count"},
}


class HeldMessages(SysCounters):
    """The broker's held-message count, sampled at every ``$SYS`` publication while open (a second late)."""

    def __init__(self, host: str, port: int, flavour: str, client_id: str) -> None:
        super().__init__(host, port, flavour, client_id, topics=HELD_TOPICS[flavour])
        self._samples_lock = threading.Lock()
        self.samples: list[tuple[float, int]] = []  # (monotonic time, held)

    def held(self) -> int | None:
        """Messages waiting for subscribers as of the latest publication; None until every part was heard."""
        with self._cond:
            if any(name not in self.values for name in self.topics):
                return None
            return sum(value if name[0] == "+" else -value for name, value in self.values.items()
                       if name in self.topics)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        # Sampled as each publication begins: the parts come one by one, so only the whole
        # previous publication adds up (mid-burst, a new total minus an old one can even be
        # negative); the retained copies a subscription starts with do not add up either.
        if msg.topic == TICK_TOPIC and not msg.retain and self.ticks:
            held = self.held()
            if held is not None:
                with self._samples_lock:
                    self.samples.append((time.monotonic(), held))
        super()._on_message(client, userdata, msg)

    def peak(self, since: float = 0.0) -> int | None:
        with self._samples_lock:
            seen = [held for at, held in self.samples if at >= since]
        return max(seen) if seen else None

    def settled(self, timeout: float) -> int | None:
        """The count after the broker's next publication (so it covers everything done before the call)."""
        try:
            self.snapshot(timeout)
        except TimeoutError:
            return None
        return self.held()
