"""Two web processes: a run emitted in process A, followed by a client connected to process B.

Both are ``bench.pipeline_server`` daphne processes on one PostgreSQL database and one
Redis channel layer, as ``docker-compose.yml`` deploys them behind a proxy. A emits at
5,000 events/s; the client (its own process) connects to B, so every live frame crosses
Redis and B's consumer, and anything it missed comes from the database. The client checks
``seq`` is gapless with nothing twice and measures emit (A's wall clock) → receive.
"""

from __future__ import annotations

import os

from flows.transports.base import port_open

from .bench_pipeline import PG_URL, REDIS_URL, delivery, fmt, verification, worst
from .pipeline_harness import BenchServer
from .report import Report

RATE = 5_000
COUNT = 50_000
P99_GOAL_MS = 250.0
LABEL = "scale-out: client on process B, run on process A"


def run(report: Report) -> None:
    missing = [f"{h}:{p}" for h, p in (("127.0.0.1", 5432), ("127.0.0.1", 6379)) if not port_open(h, p)]
    if missing:
        report.add(LABEL, None, "", note=f"not run: {', '.join(missing)} not reachable")
        return
    env = {"DATABASE_URL": PG_URL, "REDIS_URL": REDIS_URL}
    with BenchServer(env) as a, BenchServer(env) as b:
        # The same run followed on A itself first: what crossing processes adds, same load.
        local = a.scenario(COUNT, RATE, connections=1)
        # B accepts the client's Origin as its own; behind the proxy both share one origin.
        remote = a.scenario(COUNT, RATE, connections=1, follow_through=b)
    _, verified = delivery(remote, COUNT)
    p99 = worst(remote, "p99_ms")
    report.add(f"{LABEL}, emit→receive p99 at {RATE:,} events/s", p99, "ms",
               goal=f"<= {P99_GOAL_MS:g} ms, gapless", ok=verified and p99 is not None and p99 <= P99_GOAL_MS,
               note=f"PostgreSQL + channels-redis; p50 {fmt(worst(remote, 'p50_ms'))} ms, "
                    f"max {fmt(worst(remote, 'max_ms'))} ms; {verification(remote, COUNT)}; "
                    f"the same run followed on A: p99 {fmt(worst(local, 'p99_ms'))} ms, "
                    f"p50 {fmt(worst(local, 'p50_ms'))} ms; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
