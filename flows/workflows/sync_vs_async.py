"""``sync-vs-async``: the same orders over HTTP, gRPC, Celery, AMQP, Kafka and MQTT at once.

One lane per protocol (``flows.compare.lane``), each with its own caller thread and its own
real downstream doing the same work, so the lanes differ by their pattern only: a sync
caller waits for the work and meets every slowness and outage downstream; an async caller
returns once the broker has the order, the work completes later, and the broker keeps the
orders through an outage, at the price of duplicates when a handler crashes before its ack.

Threads: the run thread drives the steps and waits in ``settle``; one caller thread per
lane places its orders; the outage (``downstream=down``) and the backlog sampler have a
thread each. A failure on any of them is handed to the run thread, which fails the run
with it instead of waiting out its deadline.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any

from ..compare.backlog import BacklogSampler
from ..compare.lane import LANES, PROTOCOLS, Fulfilment, Lane, each_lane, order_id
from ..compare.outage import Outage, outage_delay_s
from ..compare.verdict import verdict
from ..context import RunCancelled
from ..ledger import DeliveryLedger
from ..params import choice_param, float_param, int_param, multi_param
from ..registry import Workflow

MODES = ("up", "slow", "down", "flaky")
# The transport each lane needs (its class's ``broker``; a test keeps the two in step).
BROKER_OF = {"http": None, "grpc": None, "celery": "amqp", "amqp": "amqp", "kafka": "kafka", "mqtt": "mqtt"}
# settle's deadline: the paced orders, the outage, the work done one at a time (twice over, for
# redeliveries), and a margin for brokers to hand back what they kept.
WORK_FACTOR, SETTLE_MARGIN_S = 2.0, 15.0


def lane_class(protocol: str) -> type[Lane]:
    """The lane of ``protocol``, imported only now (its broker client with it)."""
    module, _, name = LANES[protocol].partition(":")
    try:
        return getattr(import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise RuntimeError(f"the {protocol} lane is not part of this build ({module} is missing)") from None


class SyncVsAsync(Workflow):
    slug = "sync-vs-async"
    title = "Sync against async: the same orders over six protocols"
    pattern = "compare"
    protocol = "mixed"
    lesson = (
        "The same orders, the same work, six protocols at once. A sync caller (HTTP, gRPC) waits for the whole "
        "work and feels every slowness and outage downstream: its calls fail while the server is down. An async "
        "caller (Celery, AMQP, Kafka, MQTT) returns once the broker has the order; the work completes later, the "
        "broker keeps the orders through an outage and hands them over when the consumer is back, nothing lost, "
        "at the price of duplicates when a handler crashes before its ack."
    )
    params = {
        "orders": int_param(20, 1, 500, "Orders placed through each protocol"),
        "work_ms": int_param(100, 0, 5000, "Work each order needs in the downstream fulfilment service (ms)"),
        "rate": float_param(5.0, 0.0, 200.0, "Orders per second per protocol (0 = as fast as possible)"),
        "protocols": multi_param(PROTOCOLS, PROTOCOLS, "The protocols to compare, side by side", item="protocol"),
        "downstream": choice_param("up", MODES, "up; slow (work × 5); down (stops for outage_ms, then comes back); "
                                   "flaky (some handlings crash before their ack or response)"),
        "outage_ms": int_param(2000, 0, 60000, "How long the downstream is down (downstream = down), ms",
                               label="Outage ms"),
        "flaky_rate": float_param(0.2, 0.0, 1.0, "Share of orders whose first handling crashes (downstream = flaky)"),
    }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        cleaned, errors = super().validate(given)
        if not errors and cleaned["downstream"] == "down" and cleaned["outage_ms"] <= 0:
            errors["outage_ms"] = "must be more than 0 when downstream is down"
        return cleaned, errors

    @classmethod
    def brokers_of(cls, params: dict[str, Any]) -> list[str]:
        # Named here, not read from the lane classes: the web thread that creates a run imports no lane.
        return sorted({BROKER_OF[p] for p in params["protocols"] if BROKER_OF.get(p)})

    def expected(self, params: dict[str, Any]) -> int:
        # The first processing of every order in every lane (progress counts first ``process`` events).
        return params["orders"] * len(params["protocols"])

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        p = self.p
        self.lanes: list[Lane] = []
        self.callers: list[threading.Thread] = []
        self.failures: list[tuple[str, BaseException]] = []
        self.stopping = threading.Event()
        self.outage: Outage | None = None
        self.sampler: BacklogSampler | None = None
        self.fulfilment = Fulfilment(p["downstream"], p["work_ms"], p["outage_ms"], p["flaky_rate"])
        self.ledger = DeliveryLedger()
        classes = [lane_class(protocol) for protocol in p["protocols"]]
        for cls in classes:
            lane = cls(self.ctx, self.fulfilment, self.ledger)
            self.lanes.append(lane)  # before its setup: teardown undoes a half-done one too
            lane.setup()
        self.sampler = BacklogSampler(self.lanes, self.ctx.elapsed_ms, self._failed("the backlog sampler"))

    def start_consumers(self) -> None:
        each_lane(self.lanes, "start_downstream")  # at once: a Kafka member takes seconds to join

    def produce(self) -> None:
        self.sampler.start()
        if self.p["downstream"] == "down":
            self.outage = Outage(self.lanes, self.fulfilment, outage_delay_s(self.p["orders"], self.p["rate"]),
                                 self.ctx.emit, self.ctx.elapsed_ms, self._failed("the outage"))
            self.outage.start()
        for lane in self.lanes:
            caller = threading.Thread(target=self._place_orders, args=(lane,), name=f"caller-{lane.protocol}",
                                      daemon=True)
            self.callers.append(caller)
            caller.start()

    def settle(self) -> None:
        p = self.p
        paced_s = p["orders"] / p["rate"] if p["rate"] > 0 else 0.0
        timeout = (paced_s + p["outage_ms"] / 1000.0 + p["orders"] * self.fulfilment.work_s * WORK_FACTOR
                   + SETTLE_MARGIN_S)
        self.ctx.wait_until(self._settled, timeout, "every caller to finish and every accepted order to complete")
        # Its last sample is the drained backlog: part of the record, and of drained_ms.
        self.sampler.stop()

    def report(self) -> dict[str, Any]:
        outage = self.outage.window() if self.outage else None
        protocols = {}
        for lane in self.lanes:
            figures = lane.tally.figures(lane.sync)
            drained = self.sampler.drained_after(lane.protocol, outage["end_ms"]) if outage and outage["end_ms"] else None
            protocols[lane.protocol] = {
                **figures,
                "pattern": "sync" if lane.sync else "async",
                "backlog_source": lane.backlog_source,
                "broker": lane.broker_counts(),
                "drained_ms": drained,
                "verdict": verdict(lane.protocol, figures, lane.sync, self.p["orders"], outage is not None, drained),
            }
        return {
            "protocols": protocols,
            "outage": outage,
            "downstream": self.p["downstream"],
            "work_ms": self.p["work_ms"],
            "handling_ms": self.fulfilment.work_ms,
            "orders": self.p["orders"],
            "lost": sum(figures["lost"] for figures in protocols.values()),
        }

    def teardown(self) -> None:
        self.stopping.set()
        for helper in (self.sampler, self.outage):
            if helper is not None:
                helper.stop()
        for caller in self.callers:
            caller.join(self.fulfilment.work_s * 3 + 2.0)
        failures = []
        for lane in self.lanes:
            try:
                lane.teardown()
            except Exception as exc:  # noqa: BLE001 - every lane is torn down, whatever one of them does
                failures.append(exc)
                self.ctx.emit("error", "runner", reason=f"the {lane.protocol} lane's teardown failed: {exc}",
                              protocol=lane.protocol)
        # A teardown failure fails the run, but never hides the failure that is ending it already.
        if failures and sys.exc_info()[1] is None:
            raise failures[0]

    # -- the threads -------------------------------------------------------------------------

    def _place_orders(self, lane: Lane) -> None:
        """A lane's caller: its orders, paced at ``rate``, each placed as its pattern places it."""
        pacer = self.ctx.pacer(self.p["rate"])
        try:
            for number in range(1, self.p["orders"] + 1):
                if self.stopping.is_set():
                    return
                pacer.wait()
                lane.place(order_id(lane.protocol, number))
        except RunCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the run thread, which fails the run with it
            self.failures.append((f"the {lane.protocol} caller", exc))

    def _failed(self, who: str) -> Callable[[BaseException], None]:
        """What a helper thread calls with its failure: the run thread fails the run with it."""
        return lambda exc: self.failures.append((who, exc))

    def _settled(self) -> bool:
        if self.failures:
            who, exc = self.failures[0]
            raise RuntimeError(f"{who} failed: {exc}") from exc
        if any(caller.is_alive() for caller in self.callers):
            return False
        if self.outage is not None and not self.outage.over.is_set():
            return False
        return all(self._lane_settled(lane) for lane in self.lanes)

    def _lane_settled(self, lane: Lane) -> bool:
        """Every accepted order processed, every crashed handling delivered again, and the
        broker's own backlog read empty (a Kafka lag counts the last commit too) (async);
        save what the lane says its broker dropped."""
        if lane.sync:
            return True
        if not self.sampler.drained(lane.protocol):
            return False
        completed, dropped = set(lane.tally.completed), lane.dropped_by_broker()
        if not lane.tally.accepted <= completed | dropped:
            return False
        crashed = (order for order in completed - dropped if self.fulfilment.crashes(order, 1))
        return all(self.ledger.attempts_of(lane.protocol, order) >= 2 for order in crashed)
