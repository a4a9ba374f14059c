"""The outage of ``downstream=down``: every lane's downstream stops for ``outage_ms``, then comes back.

It starts once a quarter of the orders are due (at once when they are not paced), on a
thread of its own so the callers keep placing orders meanwhile: sync callers meet the
closed door, async callers hand their orders to a broker that keeps them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from .lane import Fulfilment, Lane, each_lane


def outage_delay_s(orders: int, rate: float) -> float:
    """Seconds after the first order until the outage: when a quarter of the orders are due."""
    return (orders / 4) / rate if rate > 0 else 0.0


class Outage:
    def __init__(self, lanes: Sequence[Lane], fulfilment: Fulfilment, delay_s: float, emit: Callable[..., int],
                 elapsed_ms: Callable[[], float], on_failure: Callable[[BaseException], None]) -> None:
        self.lanes = lanes
        self.fulfilment = fulfilment
        self.delay_s = delay_s
        self.emit = emit
        self.elapsed_ms = elapsed_ms
        self.on_failure = on_failure
        self.start_ms: float | None = None
        self.end_ms: float | None = None
        self.over = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outage", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def window(self) -> dict[str, float] | None:
        if self.start_ms is None:
            return None
        return {"start_ms": round(self.start_ms, 1), "end_ms": round(self.end_ms, 1) if self.end_ms is not None else None}

    def _announce(self, state: str) -> float:
        at = self.elapsed_ms()
        self.emit("outage", "runner", state=state, protocols=[lane.protocol for lane in self.lanes],
                  outage_ms=self.fulfilment.outage_ms)
        return at

    def _run(self) -> None:
        try:
            if self._stop.wait(self.delay_s):
                return
            self.start_ms = self._announce("down")
            self.fulfilment.down.set()
            each_lane(self.lanes, "stop_downstream")
            self._stop.wait(self.fulfilment.outage_ms / 1000.0)
            # The window is the outage itself: every downstream is started again from here, and
            # what a protocol adds to come back (a Kafka member rejoining its group takes
            # seconds) shows in its own lane, not as a longer outage for all.
            self.end_ms = self._announce("up")
            self.fulfilment.down.clear()
            # Back even when the run is stopping: teardown finds every downstream as it left it.
            each_lane(self.lanes, "start_downstream")
        except Exception as exc:  # noqa: BLE001 - handed to the run thread, which fails the run with it
            self.on_failure(exc)
        finally:
            self.over.set()
