"""``sync-vs-async``: what running the six lanes at once costs each of them.

The comparison is only fair if the lanes do not distort each other: six callers, six
downstreams and three brokers share two cores. Each protocol's lane runs once alone and
then all six run together, with the same orders, work and pace, on the real brokers
(RabbitMQ, Mosquitto; Kafka on Tansu). The figures are each lane's perceived and
end-to-end p50 together divided by alone (1.00 = no interference), and the wall time of
the six together against the longest lane alone.
"""

from __future__ import annotations

from typing import Any

from .bench_amqp import _setup_django
from .runs import run_workflow

PARAMS = {"orders": 60, "work_ms": 20, "rate": 20.0, "downstream": "up"}
TIMEOUT_S = 180.0


def use_real_brokers() -> None:
    from django.conf import settings

    from flows import transports

    for protocol, mode in (("amqp", "external"), ("mqtt", "external"), ("kafka", "embedded")):
        setting, value = transports.setting_for(protocol, mode)
        setattr(settings, setting, value)
    transports.reset()


def lanes(protocols: list[str]) -> tuple[dict[str, dict[str, Any]], float]:
    """One run over ``protocols``: each lane's figures, and the run's wall seconds."""
    def problem(result: dict[str, Any]) -> str:
        short = [p for p, f in result["protocols"].items() if f["completed"] != PARAMS["orders"] or f["errors"]]
        return f"lanes with missing orders or errors: {short}" if short else ""

    finished, wall = run_workflow("sync-vs-async", {**PARAMS, "protocols": protocols}, TIMEOUT_S, problem)
    return finished.result["protocols"], wall


def run(report: Any) -> None:
    _setup_django()
    use_real_brokers()
    from flows.compare.lane import PROTOCOLS

    alone: dict[str, dict[str, Any]] = {}
    walls: dict[str, float] = {}
    for protocol in PROTOCOLS:
        figures, walls[protocol] = lanes([protocol])
        alone[protocol] = figures[protocol]
    together, together_wall = lanes(list(PROTOCOLS))
    for protocol in PROTOCOLS:
        for measure in ("perceived", "end_to_end"):
            by_itself, with_others = alone[protocol][measure]["p50"], together[protocol][measure]["p50"]
            report.add(f"sync-vs-async {protocol} {measure} p50, six lanes at once ÷ alone",
                       with_others / by_itself if by_itself else None, "×",
                       note=f"{with_others:.1f} ms together, {by_itself:.1f} ms alone; "
                            f"{PARAMS['orders']} orders × {PARAMS['work_ms']} ms at {PARAMS['rate']:g}/s")
    longest = max(walls.values())
    report.add("sync-vs-async wall time, six lanes at once ÷ the longest lane alone", together_wall / longest, "×",
               note=f"{together_wall:.2f} s together; alone: "
                    + ", ".join(f"{p} {walls[p]:.2f} s" for p in PROTOCOLS))
