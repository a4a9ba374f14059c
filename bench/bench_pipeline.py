"""The event pipeline, end to end: recorder → channel layer → daphne → real WebSocket clients.

Two variants, each a daphne process started by ``bench.pipeline_server`` (the product's
ASGI app plus a bench-only emitter thread driven over a side channel), with clients in
separate processes (``bench.pipeline_client``, the ``websockets`` package):

- embedded: SQLite (a temporary file) and ``InMemoryChannelLayer``;
- redis: PostgreSQL (``PG_URL``) and channels-redis (``REDIS_URL``), as deployed.

Per variant: one client at a rate above the goal (sustained delivery and the recording
cost of ``recorder.emit`` on the emitting thread), one client at 5,000 events/s
(latency), ten clients at once above 20,000 events/s (delivery) and at 20,000 events/s
(latency), and, in a fresh server, a 1,000,000-event run emitted as fast as the pipeline
stores it, with one reading and one non-reading client (server RSS, and the stalled
client catching up from the database once it reads again). Every client checks ``seq``
is gapless with nothing twice; latency is emit (wall clock on the emitter) to receive
(wall clock on the client), same machine.

Everything shares the machine's two cores: emitter, pipeline, daphne, the database,
Redis and the clients.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from flows.transports.base import port_open

from .pipeline_harness import BenchServer, ScenarioResult
from .report import Report

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

THROUGHPUT_GOAL = 20_000
FAST_RATE = 25_000  # one client: paced above the goal, so the figure shows whether it keeps up
FAST_COUNT = 150_000
SLOW_RATE = 5_000
SLOW_COUNT = 25_000
FAN_CLIENTS = 10
FAN_RATE = 22_000
FAN_COUNT = 132_000
FAN_LATENCY_COUNT = 100_000
BIG_COUNT = 1_000_000
EMIT_GOAL_US = 20.0
RSS_GOAL_MB = 150.0
MB = 1024 * 1024


@dataclass
class Variant:
    name: str
    stack: str
    services: tuple[tuple[str, int], ...]
    env: Callable[[str], dict[str, str]]

    def label(self) -> str:
        return f"pipeline[{self.name}]"


VARIANTS = (
    Variant("embedded", "SQLite + InMemoryChannelLayer", (),
            lambda tmp: {"REDIS_URL": "memory://", "DATABASE_URL": f"sqlite:///{tmp}/bench-pipeline.sqlite3"}),
    Variant("redis", "PostgreSQL + channels-redis", (("127.0.0.1", 6379), ("127.0.0.1", 5432)),
            lambda tmp: {"DATABASE_URL": PG_URL, "REDIS_URL": REDIS_URL}),
)


def run(report: Report) -> None:
    wanted = os.environ.get("BENCH_PIPELINE_VARIANTS", "embedded,redis").split(",")
    report.add("pipeline: machine load before the run (1-min average)", os.getloadavg()[0], "runnable tasks",
               note=f"{os.cpu_count()} cores shared by emitter, pipeline, daphne, database, Redis and clients; "
                    "anything else running takes from the same cores")
    for variant in [v for v in VARIANTS if v.name in wanted]:
        missing = [f"{host}:{port}" for host, port in variant.services if not port_open(host, port)]
        if missing:
            report.add(variant.label(), None, "", note=f"not run: {', '.join(missing)} not reachable")
            continue
        tmp = tempfile.mkdtemp(prefix="bench-pipeline-")
        try:
            with BenchServer(variant.env(tmp)) as server:
                one_fast_client(server, variant, report)
                one_slow_client(server, variant, report)
                ten_clients(server, variant, report)
            # A fresh server: RSS growth must not hide in memory earlier scenarios grew.
            with BenchServer(variant.env(tmp)) as server:
                million_events(server, variant, report)
        except Exception as exc:  # noqa: BLE001 - one broken variant must not hide the other
            traceback.print_exc()
            report.add(variant.label(), None, "", ok=False, note=f"failed: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# -- scenarios -----------------------------------------------------------------------------


def one_fast_client(server: BenchServer, variant: Variant, report: Report) -> None:
    result = server.scenario(FAST_COUNT, FAST_RATE, connections=1)
    rate, verified = delivery(result, FAST_COUNT)
    report.add(f"{variant.label()} 1 client, sustained delivery", rate, "events/s",
               goal=f">= {THROUGHPUT_GOAL:,} events/s, gapless", ok=verified and rate >= THROUGHPUT_GOAL,
               note=f"{variant.stack}; emitter paced at {FAST_RATE:,}/s; {verification(result, FAST_COUNT)}; "
                    f"{cpu_note(result, FAST_COUNT)}")
    emit_us = result.status.get("emit_us_median")
    db = variant.stack.split(" + ")[0]
    report.add(f"{variant.label()} recording cost (recorder.emit, median)", emit_us, "µs",
               goal=f"<= {EMIT_GOAL_US:g} µs", ok=emit_us is not None and emit_us <= EMIT_GOAL_US,
               note=f"on the emitting thread at {FAST_RATE:,}/s, pipeline storing to {db}; "
                    f"p99 {fmt(result.status.get('emit_us_p99'))} µs")


def one_slow_client(server: BenchServer, variant: Variant, report: Report) -> None:
    result = server.scenario(SLOW_COUNT, SLOW_RATE, connections=1)
    p99 = worst(result, "p99_ms")
    _, verified = delivery(result, SLOW_COUNT)
    report.add(f"{variant.label()} emit→receive p99 at {SLOW_RATE:,}/s, 1 client", p99, "ms",
               goal="<= 100 ms", ok=verified and p99 is not None and p99 <= 100,
               note=f"{variant.stack}; p50 {fmt(worst(result, 'p50_ms'))} ms, max {fmt(worst(result, 'max_ms'))} ms; "
                    f"{verification(result, SLOW_COUNT)}")


def ten_clients(server: BenchServer, variant: Variant, report: Report) -> None:
    result = server.scenario(FAN_COUNT, FAN_RATE, connections=FAN_CLIENTS)
    rate, verified = delivery(result, FAN_COUNT, FAN_CLIENTS)
    report.add(f"{variant.label()} {FAN_CLIENTS} clients, sustained delivery (slowest client)", rate, "events/s",
               goal=f">= {THROUGHPUT_GOAL:,} events/s to each, gapless", ok=verified and rate >= THROUGHPUT_GOAL,
               note=f"{variant.stack}; emitter paced at {FAN_RATE:,}/s; {verification(result, FAN_COUNT, FAN_CLIENTS)}; "
                    f"{cpu_note(result, FAN_COUNT)}")
    result = server.scenario(FAN_LATENCY_COUNT, THROUGHPUT_GOAL, connections=FAN_CLIENTS)
    _, verified = delivery(result, FAN_LATENCY_COUNT, FAN_CLIENTS)
    p99 = worst(result, "p99_ms")
    report.add(f"{variant.label()} emit→receive p99 at {THROUGHPUT_GOAL:,}/s, {FAN_CLIENTS} clients", p99, "ms",
               goal="<= 250 ms", ok=verified and p99 is not None and p99 <= 250,
               note=f"worst client; p50 {fmt(worst(result, 'p50_ms'))} ms, max {fmt(worst(result, 'max_ms'))} ms; "
                    f"{verification(result, FAN_LATENCY_COUNT, FAN_CLIENTS)}; {cpu_note(result, FAN_LATENCY_COUNT)}")


def million_events(server: BenchServer, variant: Variant, report: Report) -> None:
    # Emitted as fast as the pipeline takes them (the recorder's backpressure is part of
    # what keeps memory bounded). The stalled client stops reading after its first batch
    # until the whole run is stored, then reads again: the server must not buffer for it.
    result = server.scenario(BIG_COUNT, 0, connections=1, stalled=1, timeout_s=200, sample_rss=True)
    if len(result.clients) < 2:
        report.add(f"{variant.label()} 1,000,000-event run", None, "", note="clients did not report")
        return
    reader, stalled = result.clients
    growth = (result.rss_peak - result.rss_before) / MB
    emit_s = max(1e-9, (result.status.get("finished_at") or time.time()) - result.status["started_at"])
    stored_s = max(1e-9, (result.status.get("flushed_at") or time.time()) - result.status["started_at"])
    read_all = "gapless, all events" if complete(reader, BIG_COUNT) else describe(reader, BIG_COUNT)
    report.add(f"{variant.label()} 1,000,000-event run: server RSS growth", growth, "MB",
               goal=f"< {RSS_GOAL_MB:g} MB", ok=growth < RSS_GOAL_MB and complete(reader, BIG_COUNT),
               note=f"{variant.stack}; peak over a baseline of {result.rss_before / MB:.0f} MB, with one reading and one "
                    f"non-reading client; emitted as fast as stored: {BIG_COUNT / emit_s:,.0f}/s, all stored in "
                    f"{stored_s:.1f} s; reader {read_all}")
    half = second_half_growth(result)
    report.add(f"{variant.label()} non-reading client: server RSS growth over the run's 2nd half", half, "MB",
               goal="bounded: < 20 MB while 500,000 more events flow past it", ok=half is not None and half < 20,
               note="flat = nothing is buffered for a client that stopped reading beyond its window of unacked events")
    report.add(f"{variant.label()} non-reading client, once it reads again", stalled["last"], "events",
               goal=f"all {BIG_COUNT:,}, gapless, none twice (caught up from the database)",
               ok=complete(stalled, BIG_COUNT),
               note=f"{describe(stalled, BIG_COUNT)}; stalled {emit_s:.0f} s; "
                    f"{'dropped by the server and reconnected' if stalled['reconnects'] else 'kept its connection'}; "
                    f"caught up in {stalled['last_recv'] - (result.status.get('flushed_at') or 0):.1f} s")


# -- figures from results ------------------------------------------------------------------


def delivery(result: ScenarioResult, count: int, clients: int = 1) -> tuple[float | None, bool]:
    """Slowest client's events/s from the first emit to its last receive, and whether all verified."""
    started = result.status.get("started_at") or 0.0
    if len(result.clients) < clients:
        return None, False
    rates = [c["received"] / max(1e-9, c["last_recv"] - started) for c in result.clients if c["last_recv"]]
    verified = len(rates) == clients and all(complete(c, count) for c in result.clients)
    return (min(rates) if rates else None), verified


def complete(client: dict, count: int) -> bool:
    return client["last"] == count and client["gaps"] == 0 and client["twice"] == 0


def describe(client: dict, count: int) -> str:
    text = f"got {client['last']:,}/{count:,}, {client['gaps']} missing, {client['twice']} twice"
    return text + (f", {client['error']}" if client["error"] else "")


def verification(result: ScenarioResult, count: int, clients: int = 1) -> str:
    if len(result.clients) < clients:
        return f"only {len(result.clients)}/{clients} clients reported"
    bad = [describe(c, count) for c in result.clients if not complete(c, count)]
    return "every client gapless, none twice" if not bad else "; ".join(bad[:3])


def cpu_note(result: ScenarioResult, count: int) -> str:
    client_cpu = sum(c.get("process_cpu_s", 0.0) for c in result.clients)
    return (f"CPU per event: server {result.server_cpu_s * 1e6 / count:.0f} µs "
            f"(of which pipeline thread {result.thread_cpu_s.get('event-pipeline', 0.0) * 1e6 / count:.0f}), "
            f"clients {client_cpu * 1e6 / count:.0f} µs")


def worst(result: ScenarioResult, key: str) -> float | None:
    values = [c[key] for c in result.clients if c.get(key) is not None]
    return max(values) if values else None


def second_half_growth(result: ScenarioResult) -> float | None:
    """RSS at the end of emission minus RSS when half the events had been emitted."""
    samples = result.rss_samples
    if len(samples) < 4:
        return None
    started = samples[0][0]
    emitting = (result.status.get("finished_at") or 0) - (result.status.get("started_at") or 0)
    if emitting <= 0:
        return None
    # Samples are on the bench's monotonic clock, starting when emission started.
    mid = [rss for t, rss in samples if t - started <= emitting / 2]
    end = [rss for t, rss in samples if t - started <= emitting]
    if not mid or not end:
        return None
    return (max(end) - max(mid)) / MB


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"
