"""Queue consumers that push or pull, and that can crash the way a process does.

Each consumer has its own connection and thread, so crashing one (closing its socket
without closing its channel, as a killed process would) is, for the broker, exactly one
consumer gone: RabbitMQ requeues the messages it had not acked and marks them
``redelivered``; the embedded broker does the same (``flows.amqp.memory``).

* push: ``basic.consume`` with ``basic.qos(prefetch_count)``; the broker sends messages as
  long as fewer than ``prefetch`` are unacked;
* pull: ``basic.get`` in a loop; the consumer asks for one message at a time and waits a
  little when the queue is empty (prefetch does not apply).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PUSH, PULL = "push", "pull"
PULL_IDLE_S = 0.01
DRAIN_TIMEOUT_S = 0.2


class ConsumerCrashed(Exception):
    """Raised inside a handler (through ``QueueConsumer.crash``) to die before acking."""


# handler(consumer, message): handle and ack the message, or call consumer.crash().
Handler = Callable[["QueueConsumer", Any], None]


class QueueConsumer:
    def __init__(
        self,
        broker: Any,
        queue: Any,
        name: str,
        handler: Handler,
        mode: str = PUSH,
        prefetch: int = 1,
        restart_after_s: float | None = None,
        on_restart: Callable[[QueueConsumer], None] | None = None,
        logical: str = "",
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        if mode not in (PUSH, PULL):
            raise ValueError(f"consumer mode must be push or pull, not {mode!r}")
        self.broker = broker
        self.queue = queue
        self.name = name
        self.handler = handler
        self.mode = mode
        self.prefetch = prefetch
        self.restart_after_s = restart_after_s
        self.on_restart = on_restart
        self.logical = logical or name  # the queue this consumer stands for (the logical consumer)
        self.on_exit = on_exit  # run on the consumer's thread as it ends (e.g. close its DB connection)
        self.stopping = threading.Event()
        self.killed = threading.Event()
        # Set by stop() and kill(): a pause (work, a slow-down) ends early for either.
        self._interrupt = threading.Event()
        self.on_killed: Callable[[QueueConsumer], None] | None = None
        self.ready = threading.Event()
        self._revive = threading.Event()
        self.crashes = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"consumer-{name}", daemon=True)

    # -- control ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._interrupt.set()

    def kill(self, on_killed: Callable[[QueueConsumer], None] | None = None) -> None:
        """Crash at the next chance, from any thread: at once when idle, or as soon as the
        handler's ``pause`` is cut short; what it holds unacked stays unacked (the broker
        requeues it). ``on_killed`` runs on the consumer's thread just before it dies."""
        self.on_killed = on_killed
        self.killed.set()
        self._interrupt.set()

    def pause(self, seconds: float) -> None:
        """Spend ``seconds`` (a handler's work), cut short by stop() or kill(); dies if killed."""
        if seconds > 0:
            self._interrupt.wait(seconds)
        self.die_if_killed()

    def die_if_killed(self) -> None:
        if self.killed.is_set():
            if self.on_killed is not None:
                self.on_killed(self)
            raise ConsumerCrashed("killed")

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def restart_now(self) -> None:
        """A crashed consumer comes back now, not after ``restart_after_s``."""
        self._revive.set()

    def crash(self, reason: str = "") -> None:
        """Die now, from inside the handler: nothing after this call is acked."""
        raise ConsumerCrashed(reason)

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._consume_until_stopped()
        finally:
            if self.on_exit:
                self.on_exit()

    def _consume_until_stopped(self) -> None:
        while not self.stopping.is_set():
            conn = self.broker.connection()
            try:
                conn.connect()
                channel = conn.channel()
                if self.mode == PUSH:
                    self._push(conn, channel)
                else:
                    self._pull(channel)
            except ConsumerCrashed:
                abrupt_close(conn)
                self.crashes += 1
                if self.restart_after_s is None or self._down(self.restart_after_s):
                    return
                if self.on_restart:
                    self.on_restart(self)
                continue
            except Exception as exc:  # reported to the workflow through .error
                log.exception("consumer %s failed", self.name)
                self.error = exc
                abrupt_close(conn)
                self.ready.set()
                return
            _close_quietly(conn)
            return

    def _down(self, seconds: float) -> bool:
        """Stay down ``seconds`` or until ``restart_now``; True when the consumer is stopping instead."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and not self._revive.wait(min(max(deadline - time.monotonic(), 0), 0.05)):
            if time.monotonic() >= deadline:
                break
        self._revive.clear()
        return self.stopping.is_set()

    def _push(self, conn: Any, channel: Any) -> None:
        from kombu import Consumer

        # on_message: the handler gets the raw message and decodes the body only if it needs it.
        consumer = Consumer(channel, queues=[self.queue], on_message=self._on_message,
                            prefetch_count=self.prefetch or None, accept=["json"])
        consumer.consume()
        self.ready.set()
        while not self.stopping.is_set():
            self.die_if_killed()
            try:
                conn.drain_events(timeout=DRAIN_TIMEOUT_S)
            except TimeoutError:
                continue
        consumer.cancel()

    def _pull(self, channel: Any) -> None:
        bound = self.queue(channel)
        self.ready.set()
        while not self.stopping.is_set():
            self.die_if_killed()
            message = bound.get(no_ack=False, accept=["json"])
            if message is None:
                self.stopping.wait(PULL_IDLE_S)
                continue
            self.handler(self, message)

    def _on_message(self, message: Any) -> None:
        self.handler(self, message)


def wait_until_consuming(ctx: Any, consumers: list[QueueConsumer], timeout: float = 10.0) -> None:
    """Wait for every consumer to be subscribed (or fail clearly), recording each assignment."""
    ctx.wait_until(lambda: all(c.ready.is_set() for c in consumers), timeout, "every consumer to subscribe")
    for consumer in consumers:
        if consumer.error:
            raise RuntimeError(f"consumer {consumer.name} could not start: {consumer.error}")
        ctx.emit("assign", f"consumer:{consumer.name}", queue=consumer.logical, consumer=consumer.name,
                 mode=consumer.mode, prefetch=consumer.prefetch if consumer.mode == PUSH else None)


def abrupt_close(conn: Any) -> None:
    """Drop a connection the way a killed process does: no channel.close, no connection.close.

    On RabbitMQ the TCP socket is shut down under the client; the broker notices the
    connection is gone and requeues its unacked messages. Virtual transports have no
    socket; collecting the connection closes its channels, which requeue the same way.
    """
    transport_conn = getattr(conn, "_connection", None)
    sock = getattr(getattr(transport_conn, "transport", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
    try:
        conn.collect()
    except Exception:  # the connection is being thrown away
        log.debug("collecting a crashed connection failed", exc_info=True)


def _close_quietly(conn: Any) -> None:
    try:
        conn.release()
    except Exception:  # closing at the end of a run must not fail it
        log.debug("closing a consumer connection failed", exc_info=True)
