"""paho-mqtt clients with the lifecycle a lesson needs: connect, leave, come back.

Each client runs paho's network loop on its own thread (``loop_start``); callbacks hand
what happened to the caller's hooks and return. Subscribers acknowledge manually, after
the message was handled, so "handled but not yet acknowledged" is a real moment at which
the connection can be dropped — the broker then has to deliver again.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from ..transports import BrokerUnavailable

KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 5.0


def new_client(client_id: str, clean_session: bool, manual_ack: bool = False) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    # No automatic reconnect: a dropped subscriber stays away until the run brings it back.
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                       protocol=mqtt.MQTTv311, reconnect_on_failure=False, manual_ack=manual_ack)


class Connection:
    """One paho client, its loop thread, and waiting for CONNACK / SUBACK / the loss of it."""

    def __init__(self, client_id: str, host: str, port: int, clean_session: bool, manual_ack: bool = False) -> None:
        self.client_id = client_id
        self.host, self.port = host, port
        self.clean_session = clean_session
        self.client = new_client(client_id, clean_session, manual_ack)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.online = threading.Event()
        self.offline = threading.Event()
        self.offline.set()
        self.session_present = False
        self.connect_error = ""
        self.disconnect_reason = ""
        self._connack = threading.Event()
        # packet id → (SUBACK/UNSUBACK seen, granted codes, the filter asked for)
        self._subacks: dict[int, tuple[threading.Event, list[int], str]] = {}
        self._lock = threading.Lock()
        # Hooks run on the network thread, before any message that follows CONNACK / SUBACK.
        self.on_connected: Callable[[bool], None] | None = None
        self.on_subscribed: Callable[[list[int], str], None] | None = None
        self.started = False

    # -- paho callbacks (network thread) -----------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.connect_error = str(reason)
        else:
            self.session_present = bool(flags.session_present)
            self.offline.clear()
            self.online.set()
            if self.on_connected is not None:
                self.on_connected(self.session_present)
        self._connack.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.disconnect_reason = str(reason)
        self.online.clear()
        self.offline.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[Any], properties: Any) -> None:
        with self._lock:
            waiter = self._subacks.get(mid)
        codes = [r.value for r in reasons]
        if self.on_subscribed is not None:
            self.on_subscribed(codes, waiter[2] if waiter is not None else "")
        if waiter is not None:
            waiter[1].extend(codes)
            waiter[0].set()

    def _on_unsubscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        with self._lock:
            waiter = self._subacks.get(mid)
        if waiter is not None:
            waiter[0].set()

    # -- lifecycle (caller's thread) ---------------------------------------------------

    def connect(self, timeout: float = CONNECT_TIMEOUT_S) -> bool:
        """Connect (or come back) and wait for CONNACK; returns the broker's session-present flag."""
        self._connack.clear()
        self.connect_error = ""
        if self.started:
            self.client.loop_stop()  # the old loop thread ends on its own after a drop; make sure
        try:
            if self.started:
                self.client.reconnect()
            else:
                self.client.connect(self.host, self.port, KEEPALIVE_S)
        except OSError as exc:
            raise BrokerUnavailable(f"MQTT broker at {self.host}:{self.port} refused {self.client_id}: {exc}") from None
        self.started = True
        self.client.loop_start()
        if not self._connack.wait(timeout):
            raise BrokerUnavailable(f"no CONNACK for {self.client_id} within {timeout:g} s")
        if self.connect_error:
            raise BrokerUnavailable(f"MQTT broker refused {self.client_id}: {self.connect_error}")
        return self.session_present

    def subscribe(self, topic_filter: str, qos: int, timeout: float = CONNECT_TIMEOUT_S) -> int:
        """Subscribe and wait for SUBACK; returns the granted QoS (128 = refused)."""
        codes = self._request("SUBACK", topic_filter, lambda: self.client.subscribe(topic_filter, qos), timeout)
        return codes[0] if codes else 128

    def unsubscribe(self, topic_filter: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Unsubscribe and wait for UNSUBACK: after it the broker routes nothing more to that filter."""
        self._request("UNSUBACK", topic_filter, lambda: self.client.unsubscribe(topic_filter), timeout)

    def _request(self, answer: str, topic_filter: str, send: Callable[[], tuple[int, int | None]],
                 timeout: float) -> list[int]:
        done: threading.Event = threading.Event()
        codes: list[int] = []
        # Under the lock, so the answer's callback (network thread) finds the waiter registered.
        with self._lock:
            result, mid = send()
            if mid is None:
                raise BrokerUnavailable(f"{self.client_id} could not send the request for {topic_filter!r} ({result})")
            self._subacks[mid] = (done, codes, topic_filter)
        try:
            if not done.wait(timeout):
                raise BrokerUnavailable(f"no {answer} for {self.client_id} on {topic_filter!r} within {timeout:g} s")
        finally:
            with self._lock:
                self._subacks.pop(mid, None)
        return codes

    def drop(self) -> None:
        """Lose the network: close the socket without a DISCONNECT packet (no ack gets out)."""
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def leave(self) -> None:
        """Disconnect politely: pending acknowledgements go out first, then DISCONNECT."""
        self.client.disconnect()

    def wait_offline(self, timeout: float) -> bool:
        return self.offline.wait(timeout)

    def close(self) -> None:
        if self.online.is_set():
            self.client.disconnect()
            self.offline.wait(2.0)
        self.client.loop_stop()


def wipe_session(client_id: str, host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Discard the broker's session state for ``client_id`` (connect with a clean session)."""
    conn = Connection(client_id, host, port, clean_session=True)
    try:
        conn.connect(timeout)
    finally:
        conn.close()

