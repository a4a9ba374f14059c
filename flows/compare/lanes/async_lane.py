"""What the broker lanes (AMQP, Celery) add to ``Lane``: the log reads publish, then deliver.

An async caller records its ``publish`` once the broker's acceptance (a confirm, a 202) is
back, and the broker may hand the message to the consumer before that. The consumer waits
for the caller's record (``wait_recorded``) before it records its ``deliver``: a brief wait
at most, and never longer than ``timeout`` (a caller that died mid-publish must not stop
the consumer).
"""

from __future__ import annotations

import threading
from typing import Any

from ..lane import Lane


class AsyncLane(Lane):
    sync = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: set[str] = set()
        self._recorded_changed = threading.Condition()

    def place(self, order: str) -> None:
        try:
            super().place(order)
        finally:
            with self._recorded_changed:
                self._recorded.add(order)
                self._recorded_changed.notify_all()

    def wait_recorded(self, order: str, timeout: float = 2.0) -> None:
        """On the consumer's thread: until the caller's side of ``order`` is in the log."""
        with self._recorded_changed:
            self._recorded_changed.wait_for(lambda: order in self._recorded, timeout)
