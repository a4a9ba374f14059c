"""The bench's event source, inside the daphne process where real runs execute.

A plan (count, rate) becomes a ``Run`` row, a ``Recorder`` tracked by the process-wide
pipeline exactly as the runner does it, and a thread that calls ``recorder.emit`` at the
planned rate. Each event carries its wall-clock emit time so a client in another process
on the same machine can compute emit → receive latency.

Nothing here is registered as a workflow: the product never sees a benchmark slug.
"""

from __future__ import annotations

import statistics
import threading
import time
from array import array
from typing import Any

from django.db import connection
from django.utils import timezone

from flows.models import Run
from flows.pipeline import get_pipeline
from flows.recorder import Recorder
from flows.runner import get_runner

BENCH_WORKFLOW = "bench-pipeline"
# Timing every emit of a million-event run would itself cost memory the RSS figure counts.
MAX_TIMED_EMITS = 200_000
TICK_S = 0.001


class EmitPlan:
    def __init__(self, count: int, rate: float) -> None:
        self.count = count
        self.rate = rate
        self.run = Run.objects.create(workflow=BENCH_WORKFLOW, params={"count": count, "rate": rate}, state=Run.State.RUNNING,
                                      started_at=timezone.now())
        pipeline = get_pipeline()
        self.recorder = Recorder(self.run.pk, pipeline)
        pipeline.track(self.recorder, lambda: get_runner().summary_of(self.run))
        self.emitted = 0
        self.emit_ns = array("q")
        self.started_at = self.finished_at = self.flushed_at = 0.0
        self.flushed = False
        self.error = ""
        self.thread = threading.Thread(target=self._emit_all, name=f"bench-emitter-{self.run.pk}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _emit_all(self) -> None:
        try:
            self._emit_paced()
            self.finished_at = time.time()
            pipeline = get_pipeline()
            self.flushed = pipeline.flush(self.recorder, timeout=120.0)
            self.flushed_at = time.time()
            pipeline.untrack(self.run.pk)
            Run.objects.filter(pk=self.run.pk).update(state=Run.State.SUCCEEDED, finished_at=timezone.now())
        except Exception as exc:  # noqa: BLE001 - reported to the bench over the control channel
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    def _emit_paced(self) -> None:
        emit = self.recorder.emit
        clock = time.perf_counter_ns
        timed = self.emit_ns
        count, rate = self.count, self.rate
        self.started_at = time.time()
        start = time.perf_counter()
        i = 0
        while i < count:
            due = count if rate <= 0 else min(count, int((time.perf_counter() - start) * rate) + 1)
            if i >= due:
                time.sleep(TICK_S)
                continue
            while i < due:
                i += 1
                attrs = {"queue": "billing", "routing_key": "orders.created", "size": 128, "emit_ts": time.time()}
                message_id = f"m-{i}"
                t0 = clock()
                emit("deliver", "queue:billing", message_id, 1, False, attrs)
                if i <= MAX_TIMED_EMITS:
                    timed.append(clock() - t0)
            self.emitted = i
        self.emitted = i

    def status(self) -> dict[str, Any]:
        return {
            "run": self.run.pk,
            "count": self.count,
            "rate": self.rate,
            "emitted": self.emitted,
            "written_seq": self.recorder.written_seq,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "flushed_at": self.flushed_at,
            "flushed": self.flushed,
            "done": bool(self.flushed_at) or bool(self.error),
            "error": self.error,
            **self._emit_cost(),
            "emit_rate": self.emitted / max(1e-9, (self.finished_at or time.time()) - self.started_at) if self.started_at else 0,
        }

    def _emit_cost(self) -> dict[str, float | None]:
        # Only once emitting is over: sorting while it runs would cost the server CPU it measures.
        if not self.finished_at or not self.emit_ns:
            return {"emit_us_median": None, "emit_us_p99": None}
        ordered = sorted(self.emit_ns)
        return {"emit_us_median": statistics.median(ordered) / 1000.0, "emit_us_p99": ordered[int(len(ordered) * 0.99)] / 1000.0}
