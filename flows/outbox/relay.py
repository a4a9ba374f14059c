"""The outbox relay: its own thread, reading the outbox table and publishing what is pending.

Each pass takes the run's pending rows in order, publishes each and then marks it sent, in
two steps no transaction can join (one is the broker's, one is the database's). A crash
falls between them: the relay dies after the broker has the message and before the row
says so, comes back after ``restart_s`` and, reading the table again, publishes the row a
second time. That duplicate is the price of never losing a message; the consumer's inbox
pays it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

RELAY = "relay"
POLL_S = 0.05


class RelayCrashed(Exception):
    """Raised inside a pass to die between publish and mark sent."""


class Relay:
    """``publish(row, attempt)`` hands one row's message to the broker (recording it);
    ``crash_due(row)`` says whether to die after this publish (a reason, or '');
    ``on_crash(row, reason)`` and ``on_restart()`` record what happened."""

    def __init__(self, run_id: int, publish: Callable[[Any, int], None], crash_due: Callable[[Any], str],
                 on_crash: Callable[[Any, str], int], on_restart: Callable[[], None],
                 on_sent: Callable[[Any], None], restart_s: float) -> None:
        self.run_id = run_id
        self.publish, self.crash_due, self.on_crash = publish, crash_due, on_crash
        self.on_restart, self.on_sent = on_restart, on_sent
        self.restart_s = restart_s
        self.stopping = threading.Event()
        self.down = False
        self.crashes = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"outbox-relay-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self.stopping.is_set():
                try:
                    published = self._pass()
                except RelayCrashed:
                    self._down()
                    continue
                if not published:
                    self.stopping.wait(POLL_S)
        except Exception as exc:  # noqa: BLE001 - reported by the workflow's tick
            self.error = exc
        finally:
            connection.close()

    def _pass(self) -> int:
        """Publish every pending row once; how many there were."""
        from ..models import OutboxRow

        rows = list(OutboxRow.objects.filter(run_id=self.run_id, state=OutboxRow.State.PENDING).order_by("id"))
        for row in rows:
            if self.stopping.is_set():
                break
            row.publishes += 1
            self.publish(row, row.publishes)
            reason = self.crash_due(row)
            if reason:
                # The broker has the message; the row still says pending.
                OutboxRow.objects.filter(pk=row.pk).update(publishes=row.publishes)
                self.on_crash(row, reason)
                raise RelayCrashed(reason)
            OutboxRow.objects.filter(pk=row.pk).update(state=OutboxRow.State.SENT, publishes=row.publishes)
            self.on_sent(row)
        return len(rows)

    def _down(self) -> None:
        from django.db import connection

        self.crashes += 1
        self.down = True
        connection.close()  # a dead process holds no connection
        deadline = time.monotonic() + self.restart_s
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.stopping.wait(min(POLL_S, max(deadline - time.monotonic(), 0)))
        self.down = False
        if not self.stopping.is_set():
            self.on_restart()
