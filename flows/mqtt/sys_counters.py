"""The broker's own PUBLISH counters, read from its ``$SYS`` topics.

Both brokers publish cumulative counters periodically (Mosquitto every ``sys_interval``,
10 s by default, 1 s for the one the app embeds; our embedded amqtt every second) under
different names, so callers pass the broker's ``impl``. A snapshot waits
for the *next* publication after it was asked for, so it covers everything that happened
before the call. Counters of PUBLISH packets the broker *sent* include the ``$SYS``
messages it sent to this very watcher; ``sys_messages`` counts those so callers can take
them out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .clients import Connection

TOPICS = {
    "mosquitto": {"received": "$SYS/broker/publish/messages/received", "sent": "$SYS/broker/publish/messages/sent"},
    "amqtt": {"received": "$SYS/broker/messages/publish/received", "sent": "$SYS/broker/messages/publish/sent"},
}
TICK_TOPIC = "$SYS/broker/uptime"  # changes at every publication, so it marks each one
# A publication is a burst of messages; it is over once the watcher heard nothing for this long.
BURST_QUIET_S = 0.3


@dataclass(frozen=True)
class Snapshot:
    # None until the broker published the counter: Mosquitto only publishes values that changed.
    received: int | None
    sent: int | None
    # $SYS messages this watcher had received when the snapshot's burst was over.
    sys_messages: int
    at: float


class SysCounters:
    def __init__(self, host: str, port: int, flavour: str, client_id: str,
                 topics: dict[str, str] | None = None) -> None:
        # name → $SYS topic of each value kept; the PUBLISH counters unless told otherwise
        self.topics = topics or TOPICS[flavour]
        self.conn = Connection(client_id, host, port, clean_session=True)
        self.conn.client.on_message = self._on_message
        self._cond = threading.Condition()
        self.values: dict[str, int] = {}
        self.ticks = 0
        self.messages = 0
        self.last_message_at = 0.0

    def open(self) -> SysCounters:
        self.conn.connect()
        for topic in (*self.topics.values(), TICK_TOPIC):
            self.conn.subscribe(topic, 0)
        return self

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SysCounters:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages += 1
            self.last_message_at = time.monotonic()
            if msg.topic == TICK_TOPIC:
                if not msg.retain:  # a retained copy on subscribe is old news, not a publication
                    self.ticks += 1
            else:
                for name, topic in self.topics.items():
                    if msg.topic == topic:
                        self.values[name] = int(float(msg.payload.decode() or 0))
            self._cond.notify_all()

    def snapshot(self, timeout: float = 30.0) -> Snapshot:
        """The counters as of the broker's next publication (which may take ``sys_interval``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self.ticks + 1
            while self.ticks < target or time.monotonic() - self.last_message_at < BURST_QUIET_S:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no $SYS publication within {timeout:g} s (is $SYS enabled on the broker?)")
                self._cond.wait(min(left, BURST_QUIET_S))
            return Snapshot(self.values.get("received"), self.values.get("sent"), self.messages, time.monotonic())
