"""Reads each message the broker dead-letters into a DLQ once, and leaves it in the DLQ.

A classic queue cannot be browsed, so the watcher consumes without acking (no prefetch
limit) and holds what it got: the messages stay the broker's, counted as unacked. When it
stops, closing its channel gives them back and the DLQ's ready count is the depth again;
the passive declare in the run's report reads that. A replay runs on the watcher's own
thread (the channel is not shared): each held message is published back, then acked here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

DRAIN_S = 0.05


class DlqWatcher:
    def __init__(self, broker: Any, dlq: Any, on_arrival: Callable[[Any], str]) -> None:
        self.broker = broker
        self.dlq = dlq
        self.on_arrival = on_arrival  # called on the watcher's thread; returns the message id
        self.held: dict[str, Any] = {}  # message id → message, unacked (watcher thread only)
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dlq-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching; the held messages go back to the DLQ as ready."""
        self.stopping.set()
        self._thread.join(timeout)

    def replay(self, publish: Callable[[Any], None]) -> Future:
        """Publish every held message with ``publish(message)``, then ack it in the DLQ; the ids."""
        def replay_all() -> list[str]:
            done = []
            for message_id, message in list(self.held.items()):
                publish(message)
                message.ack()
                del self.held[message_id]
                done.append(message_id)
            return done
        return self._call(replay_all)

    def _call(self, fn: Callable[[], Any]) -> Future:
        future: Future = Future()
        if not self._thread.is_alive():
            future.set_exception(RuntimeError("the DLQ watcher is not running"))
        else:
            self._calls.put((fn, future))
        return future

    def _run(self) -> None:
        from kombu import Consumer

        conn = self.broker.connection()
        try:
            conn.connect()
            # No basic.qos: the broker may hand over every dead letter, which the watcher holds.
            consumer = Consumer(conn.channel(), queues=[self.dlq], on_message=self._arrived, accept=["json"])
            consumer.consume()
            self.ready.set()
            while not self.stopping.is_set():
                self._run_calls()
                try:
                    conn.drain_events(timeout=DRAIN_S)
                except TimeoutError:
                    continue
        except Exception as exc:  # reported to the workflow through .error
            log.exception("the DLQ watcher failed")
            self.error = exc
        finally:
            self.ready.set()
            self._run_calls()  # a caller waiting on a replay gets its answer, not a timeout
            try:
                conn.release()  # the channel closes: the broker requeues what was held
            except Exception:  # closing at the end of a run must not fail it
                log.debug("closing the DLQ watcher's connection failed", exc_info=True)

    def _arrived(self, message: Any) -> None:
        self.held[self.on_arrival(message)] = message

    def _run_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)
