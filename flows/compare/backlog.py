"""The backlog sampler: how many orders wait at each async lane's broker, read about every 100 ms.

One thread for every lane: it asks each lane's ``backlog()`` (the broker's own count: a
queue depth, a consumer group's lag), keeps the lane's largest in its tally, and emits a
``backlog`` event whenever the count changed, so the view can draw the area rise during
an outage and drain after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from .lane import Lane

SAMPLE_S = 0.1


class BacklogSampler:
    def __init__(self, lanes: Sequence[Lane], elapsed_ms: Callable[[], float], on_failure: Callable[[BaseException], None]
                 ) -> None:
        self.lanes = [lane for lane in lanes if not lane.sync]
        self.elapsed_ms = elapsed_ms
        self.on_failure = on_failure
        self.samples: dict[str, list[tuple[float, int]]] = {lane.protocol: [] for lane in self.lanes}
        self._last: dict[str, int | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog-sampler", daemon=True)

    def start(self) -> None:
        if self.lanes:
            self._thread.start()

    def stop(self) -> None:
        """Stop sampling, after one last sample (the drained backlog is part of the record)."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(5.0)

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(SAMPLE_S)
                self.sample()
                if stopping:
                    return
        except Exception as exc:  # noqa: BLE001 - handed to the run thread, which fails the run with it
            self.on_failure(exc)

    def sample(self) -> None:
        for lane in self.lanes:
            depth = lane.backlog()
            if depth is None:
                continue
            self.samples[lane.protocol].append((self.elapsed_ms(), depth))
            lane.tally.backlog_max = max(lane.tally.backlog_max, depth)  # the only writer: this thread
            if self._last.get(lane.protocol) != depth:
                self._last[lane.protocol] = depth
                lane.emit("backlog", lane.backlog_actor or f"queue:{lane.protocol}.orders", depth=depth,
                          source=lane.backlog_source)

    def drained(self, protocol: str) -> bool:
        """Whether the broker's own count for the lane last read empty (or it has none to read)."""
        return self._last.get(protocol, 0) in (0, None)

    def drained_after(self, protocol: str, since_ms: float) -> float | None:
        """Milliseconds from ``since_ms`` until the lane's backlog was first seen empty again; None if never."""
        for at, depth in self.samples.get(protocol, []):
            if at >= since_ms and depth == 0:
                return round(at - since_ms, 1)
        return None
