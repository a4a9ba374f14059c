"""The MQTT lane: a QoS 1 publish, a persistent-session subscriber that acknowledges after the work.

The caller publishes each order at QoS 1 and waits for the broker's PUBACK, no longer: that
wait is what it perceives. One subscriber, ``subscriber:mqtt``, holds a persistent session
(clean session false, one client id for the whole run) and a QoS 1 subscription; it
acknowledges an order (manual PUBACK) only after the work, so

- a crash before the PUBACK is a dropped connection: the subscriber comes straight back to
  its session and the broker sends the order again with DUP=1 (MQTT 3.1.1 §4.4);
- an outage is the subscriber disconnecting: the broker queues what is published meanwhile
  in the session and sends it once the subscriber is back.

Messages reach the client before the handler takes them (the broker pushes up to its
in-flight window), so the work runs on a thread of its own and an order received on a
connection that is gone is left alone: the broker still owes it and sends it again.

The backlog is counted here (MQTT has no queue-depth query): orders the broker PUBACKed that
the handler has not taken yet. The broker's own ``$SYS`` count of the messages it holds
(``flows.mqtt.held``) is the cross-check in ``broker_counts``. amqtt, the fallback broker,
never sends an unacknowledged message again (``flows.mqtt.caveats``): there the crashed
order shows no duplicate and the orders in flight when the subscriber left are lost; the
lane counts them and says so rather than hide them.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
from typing import Any, ClassVar

from ...mqtt.clients import Connection, wipe_session
from ...mqtt.held import HeldMessages
from ...transports import BrokerUnavailable
from ..lane import CallFailed, HandlingCrashed, Lane

SUBSCRIBER = "subscriber:mqtt"
QOS = 1
PUBACK_TIMEOUT_S = 5.0
TAKE_STEP_S = 0.1  # how often the handler looks up from an empty queue to see if the lane is closing
# The embedded brokers publish $SYS every second: one more publication after the run, at most this long.
SYS_SETTLE_S = 3.0
DISCONNECT_WAIT_S = 5.0
# amqtt can hold on to a dropped connection until the PUBACKs it waits for on it time out (5 s).
RELEASE_WAIT_S = 8.0

DUP_REASON = ("redelivered with DUP=1: the broker never got the subscriber's PUBACK "
              "(the connection dropped after the work, before the ack)")
AGAIN_REASON = "delivered again (DUP=0) after the subscriber came back to its session"
AMQTT_DROPS = ("amqtt drops a QoS 1 message whose PUBACK had not come when the subscriber's connection ended "
               "instead of sending it again with DUP=1: a crashed order shows no duplicate, and orders in flight "
               "to the subscriber when it left (outage or crash) are lost; it can also hold on to a dropped "
               "connection until its 5 s PUBACK timeout, and the crashed subscriber waits for that to come back")


class MqttLane(Lane):
    protocol = "mqtt"
    sync = False
    broker = "mqtt"
    backlog_actor = SUBSCRIBER
    backlog_source: ClassVar[str] = (
        "orders the broker PUBACKed that the subscriber has not started handling (queued in its persistent session "
        "or in flight to it), counted by the lane: MQTT has no queue-depth query; the broker's $SYS count of held "
        "messages is the cross-check")

    # -- setup and the caller ---------------------------------------------------------------

    def setup(self) -> None:
        self.mqtt = self.ctx.broker("mqtt")
        self.host, self.port = self.mqtt.host, self.mqtt.port
        self.token = secrets.token_hex(3)
        # Unique per run and per test session reusing run ids: nobody else's messages match.
        self.topic = f"flows/{self.ctx.namespace}-{self.token}/orders"
        self.client_id = f"fl-{self.token}-fulfil"
        self._lock = threading.Lock()
        self._pubacked: set[str] = set()
        self._taken: set[str] = set()  # orders the handler started on at least once
        # Unacknowledged when their connection ended: received but not taken, or crashed on.
        self._unacked_at_drop: set[str] = set()
        self.figures = {"dup_deliveries": 0, "retain_flag_deliveries": 0, "left_behind": 0, "foreign": 0,
                        "pubacks_sent": 0, "connects": 0, "session_resumed": 0, "session_lost": 0}
        self.subscriber: Connection | None = None
        self._generation = 0  # connections of the subscriber so far; a message belongs to one of them
        self._inbox: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._handling = threading.Lock()  # held for one handling, and to stop or start the subscriber
        self._down = False
        self._closing = threading.Event()
        self._handler: threading.Thread | None = None
        self.held: HeldMessages | None = None
        # Whether the broker sends an unacknowledged message again on reconnect, as MQTT 3.1.1 says.
        self.resends_unacked = self.mqtt.impl != "amqtt"
        self.publisher = Connection(f"fl-{self.token}-orders", self.host, self.port, clean_session=True)
        self.publisher.connect()
        self._watch_held()

    def _watch_held(self) -> None:
        held = HeldMessages(self.host, self.port, self.mqtt.impl, f"fl-{self.token}-sys")
        try:
            self.held = held.open()
        except BrokerUnavailable:
            held.close()  # the cross-check is missing, not the lane: broker_counts says so

    def hand_over(self, order: str) -> dict[str, Any]:
        payload = json.dumps({"id": order, "run": self.token}).encode()
        info = self.publisher.client.publish(self.topic, payload, qos=QOS)
        try:
            info.wait_for_publish(PUBACK_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            raise CallFailed(f"the broker did not take it: {exc}") from None
        if not info.is_published():
            raise CallFailed(f"no PUBACK within {PUBACK_TIMEOUT_S:g} s")
        with self._lock:
            self._pubacked.add(order)
        return {"qos": QOS, "ack": "PUBACK", "packet_id": info.mid}

    # -- the subscriber ----------------------------------------------------------------------

    def start_downstream(self) -> None:
        with self._handling:
            if self.subscriber is None:
                self.subscriber = self._new_subscriber()
            else:
                self._wait_released()
            present = self.subscriber.connect()
            if not present:
                # A new session (or one the broker forgot): it has to subscribe again.
                granted = self.subscriber.subscribe(self.topic, QOS)
                if granted not in (1, 2):
                    raise BrokerUnavailable(f"the broker refused the QoS {QOS} subscription to {self.topic} ({granted})")
            self._down = False
        if self._handler is None:
            self._handler = threading.Thread(target=self._handle_inbox, name="mqtt-fulfil", daemon=True)
            self._handler.start()

    def stop_downstream(self) -> None:
        # Waits for the handling in progress: the service stops after acknowledging it.
        with self._handling:
            self._down = True
            self.emit("revoke", SUBSCRIBER, subscriber="mqtt", action="disconnect", session="persistent",
                      reason="the subscriber disconnected (outage): the broker keeps the QoS 1 orders "
                             "published meanwhile in its persistent session")
            if self.subscriber is not None:
                self.subscriber.leave()
                self.subscriber.wait_offline(DISCONNECT_WAIT_S)

    def _new_subscriber(self) -> Connection:
        conn = Connection(self.client_id, self.host, self.port, clean_session=False, manual_ack=True)
        conn.client.on_message = self._on_message
        conn.on_connected = self._on_connected
        return conn

    def _on_connected(self, session_present: bool) -> None:  # network thread, before the connection's messages
        self._generation += 1
        first = self.figures["connects"] == 0
        self._count(connects=1, **({} if first else {"session_resumed" if session_present else "session_lost": 1}))
        self.emit("assign", SUBSCRIBER, subscriber="mqtt", action="connect" if first else "reconnect",
                  clean_session=False, session_present=session_present, client_id=self.client_id)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:  # network thread
        self._inbox.put((self._generation, msg))

    def _handle_inbox(self) -> None:
        while not self._closing.is_set():
            try:
                generation, msg = self._inbox.get(timeout=TAKE_STEP_S)
            except queue.Empty:
                continue
            try:
                self._handle(generation, msg)
            except Exception as exc:  # noqa: BLE001 - the handler thread must outlive one bad message
                self.emit("error", SUBSCRIBER, reason=f"{type(exc).__name__}: {exc}")

    def _handle(self, generation: int, msg: Any) -> None:
        order = self._order_of(msg)
        with self._handling:
            conn = self.subscriber
            if conn is None or self._down or generation != self._generation or not conn.online.is_set():
                # Its connection ended before the handler got to it: the broker owes it again.
                if order is not None:
                    self._count(left_behind=1)
                    self._unacked_when_the_connection_ended(order, "received but not handled")
                return
            if order is None:
                self._count(foreign=1)  # not this run's (amqtt sends retained messages of other topics)
                conn.client.ack(msg.mid, msg.qos)
                return
            with self._lock:
                self._taken.add(order)
            flags = {"dup": bool(msg.dup), "packet_id": msg.mid,
                     **({"retain": True} if msg.retain else {})}  # amqtt marks queued messages RETAIN=1
            self._count(dup_deliveries=int(flags["dup"]), retain_flag_deliveries=int(bool(msg.retain)))
            try:
                self.fulfil(order, SUBSCRIBER, DUP_REASON if msg.dup else AGAIN_REASON, **flags)
            except HandlingCrashed:
                self._come_back(conn)
                if not self.resends_unacked:  # Mosquitto's DUP=1 copy says the rest; amqtt sends none
                    self._unacked_when_the_connection_ended(order, "crashed on")
                else:
                    with self._lock:
                        self._unacked_at_drop.add(order)
                return
            conn.client.ack(msg.mid, msg.qos)
            self._count(pubacks_sent=1)

    def _unacked_when_the_connection_ended(self, order: str, how: str) -> None:
        with self._lock:
            self._unacked_at_drop.add(order)
        if self.resends_unacked:
            why = f"{how} when the subscriber's connection ended: the broker sends it again (MQTT 3.1.1 §4.4)"
        else:
            why = f"{how} when the subscriber's connection ended, and amqtt drops it: it will not come again"
        self.emit("revoke", SUBSCRIBER, order, subscriber="mqtt", action="unacked", reason=why)

    def _order_of(self, msg: Any) -> str | None:
        if msg.topic != self.topic:
            return None
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return None
        return body.get("id") if isinstance(body, dict) and body.get("run") == self.token else None

    def _come_back(self, conn: Connection) -> None:
        """The crash: the connection drops with the PUBACK unsent, and the restarted subscriber reconnects."""
        conn.drop()
        conn.wait_offline(DISCONNECT_WAIT_S)
        self._wait_released()
        conn.connect()

    def _wait_released(self) -> None:
        """Come back only once the broker let go of the old connection (amqtt lags: ``holds_connection``)."""
        try:
            self.ctx.wait_until(lambda: not self.mqtt.holds_connection(self.client_id), RELEASE_WAIT_S,
                                "the broker to let go of the subscriber's old connection", tend=False)
        except TimeoutError:
            pass  # come back anyway: a broker that never lets go would keep the subscriber away for ever

    def _count(self, **changes: int) -> None:
        with self._lock:
            for name, value in changes.items():
                self.figures[name] += value

    # -- the backlog and the broker's side ------------------------------------------------------

    def backlog(self) -> int:
        dropped = self.dropped_by_broker()
        with self._lock:
            return len(self._pubacked - self._taken - dropped)

    def dropped_by_broker(self) -> set[str]:
        """amqtt's: the orders unacknowledged when their connection ended that never came again.

        Mosquitto owes every one of them (MQTT 3.1.1 §4.4): none is given up on there."""
        if self.resends_unacked:
            return set()
        with self._lock:
            unacked = set(self._unacked_at_drop)
        return {order for order in unacked if self.ledger.attempts_of(self.protocol, order) <= 1}

    def broker_counts(self) -> dict[str, Any]:
        # The run may settle on a redelivery's arrival: let that handling finish and send its PUBACK first.
        with self._handling, self._lock:
            counted = {**self.figures, "pubacked": len(self._pubacked), "taken": len(self._taken),
                       "unacked_at_drop": len(self._unacked_at_drop)}
        counted["dropped_by_broker"] = len(self.dropped_by_broker())
        counted["waiting"] = self.backlog()
        counts: dict[str, Any] = {"impl": self.mqtt.impl, "counted_by_lane": counted, "broker_held": self._held_counts()}
        if not self.resends_unacked:
            counts["caveats"] = [AMQTT_DROPS]
        return counts

    def _held_counts(self) -> dict[str, Any]:
        """The broker's $SYS count of messages held for subscribers: its peak in the run, and after it."""
        if self.held is None:
            return {"read": False, "why": "could not subscribe to the broker's $SYS topics"}
        # Only the embedded brokers publish every second; an external one may take its 10 s or more.
        after = self.held.settled(SYS_SETTLE_S) if self.mqtt.embedded else None
        return {"read": True, "peak": self.held.peak(), "after": after, "samples": len(self.held.samples),
                "exact": self.mqtt.embedded,
                "scope": "every client of the broker" if self.mqtt.embedded else
                "every client of a shared broker, publishing $SYS at its own interval: not waited for"}

    def teardown(self) -> None:
        if not hasattr(self, "publisher"):
            return  # the broker was never reached
        self._closing.set()
        if self._handler is not None:
            self._handler.join(DISCONNECT_WAIT_S)
        for conn in (self.subscriber, self.publisher, self.held.conn if self.held else None):
            if conn is not None:
                try:
                    conn.close()
                except (RuntimeError, ValueError, OSError):
                    pass
        if self.subscriber is not None:
            try:
                wipe_session(self.client_id, self.host, self.port)  # the broker would keep it for ever
            except BrokerUnavailable:
                pass
