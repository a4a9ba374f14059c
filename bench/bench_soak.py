"""Soak: repeated ``kafka-partitions``, ``amqp-routing`` and ``mqtt-qos`` runs on the embedded brokers.

For ``FLOWS_SOAK_S`` seconds (default 180) the three workflows run in turn through the
runner, exactly as the API starts them, with the default retention on. After every run the
resident memory (RSS) of the server process and of each broker child process (Tansu;
Mosquitto when the embedded MQTT broker is one) is sampled. Reported: RSS at the start,
middle and end, and the growth per minute after a warm-up (the first third, at least one
full cycle), fitted over every sample by least squares. Goal: flat, under 1 MB/min each.

Every Kafka run sends ``KAFKA_MESSAGES`` messages of ``KAFKA_BYTES`` to a topic of its own;
an embedded Tansu keeps records in memory until their topic is deleted, so without per-run
deletion its RSS grows by roughly that much per run.

Also reported: this process's CPU time per event over the soak (every thread: runs, readers,
the event pipeline), and how many malloc arenas it ended with (flows/malloc_arenas.py).

At the end the soak's own runs are deleted with the retention code, timed: events deleted
per second on the configured database.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from .proc import stat_fields
from .runs import run_workflow

SOAK_S = float(os.environ.get("FLOWS_SOAK_S", "180"))
GOAL_MB_PER_MIN = 1.0
KAFKA_MESSAGES = 10_000
KAFKA_BYTES = 200
CYCLE = [
    ("kafka-partitions", {"messages": KAFKA_MESSAGES, "message_bytes": KAFKA_BYTES, "partitions": 4, "keys": 16,
                          "rate": 0, "acks": "all"}),
    ("amqp-routing", {"exchange_type": "topic", "messages": 2000, "rate": 0, "work_ms": 0, "consumers": 1}),
    ("mqtt-qos", {"messages": 1000, "rate": 0}),
]
RUN_TIMEOUT_S = 120.0


@dataclass
class Sample:
    at_s: float
    runs: int
    rss_mb: dict[str, float]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def broker_children() -> dict[str, list[int]]:
    """This process's child processes that are brokers, by program name (from /proc)."""
    me = os.getpid()
    found: dict[str, list[int]] = {}
    for pid, fields in stat_fields().items():
        if int(fields[1]) != me:
            continue
        try:
            with open(f"/proc/{pid}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        if name in ("tansu", "mosquitto"):
            found.setdefault(name, []).append(pid)
    return found


def sample(started: float, runs: int) -> Sample:
    figures = {"server": rss_mb(os.getpid()) or 0.0}
    for name, pids in broker_children().items():
        figures[name] = sum(rss_mb(pid) or 0.0 for pid in pids)
    return Sample(time.monotonic() - started, runs, figures)


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 60.0


def use_embedded_brokers() -> Any:
    from django.conf import settings

    from flows import transports

    saved = {}
    for protocol in ("kafka", "amqp", "mqtt"):
        setting, value = transports.setting_for(protocol, "embedded")
        saved[setting] = getattr(settings, setting)
        setattr(settings, setting, value)
    transports.reset()
    return saved


def soak(duration_s: float) -> tuple[list[Sample], list[int], int, float]:
    """Run the cycle for ``duration_s``; the samples, run ids, events and CPU seconds of this process."""
    started = time.monotonic()
    cpu_started = time.process_time()
    samples = [sample(started, 0)]
    run_ids: list[int] = []
    events = 0
    while time.monotonic() - started < duration_s:
        slug, given = CYCLE[len(run_ids) % len(CYCLE)]
        finished, _wall = run_workflow(slug, given, timeout=RUN_TIMEOUT_S)
        run_ids.append(finished.pk)
        events += finished.summary["last_seq"]
        samples.append(sample(started, len(run_ids)))
        last = samples[-1]
        print(f"  {last.at_s:6.0f} s  run {len(run_ids):3d} {slug:17s} "
              + "  ".join(f"{k} {v:6.1f} MB" for k, v in sorted(last.rss_mb.items())), flush=True)
    return samples, run_ids, events, time.process_time() - cpu_started


def run(report: Any) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from flows import transports
    from flows.malloc_arenas import arena_count
    from flows.retention import delete_runs

    call_command("migrate", verbosity=0, interactive=False)
    saved = use_embedded_brokers()
    try:
        # One cycle first, so every broker is started and every code path imported.
        for slug, given in CYCLE:
            warm, _ = run_workflow(slug, given, timeout=RUN_TIMEOUT_S)
            delete_runs([warm.pk])
        samples, run_ids, events, cpu_s = soak(SOAK_S)
    finally:
        transports.reset()
        for setting, value in saved.items():
            setattr(settings, setting, value)

    warmup_s = max(SOAK_S / 3, samples[min(len(CYCLE), len(samples) - 1)].at_s)
    steady = [s for s in samples if s.at_s >= warmup_s]
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    setup = (f"{len(run_ids)} runs ({', '.join(slug for slug, _ in CYCLE)} in turn) in {last.at_s:.0f} s, "
             f"{events:,} events; kafka: {KAFKA_MESSAGES:,} × {KAFKA_BYTES} B per run; "
             f"server CPU {cpu_s * 1e6 / max(events, 1):.1f} µs/event; malloc arenas {arena_count()}")
    print(f"  {setup}")
    for name in sorted(last.rss_mb):
        points = [(s.at_s, s.rss_mb[name]) for s in steady if name in s.rss_mb]
        slope = slope_per_min(points)
        trio = " / ".join(f"{s.rss_mb.get(name, 0.0):.1f}" for s in (first, middle, last))
        report.add(f"soak {name} RSS growth", slope, "MB/min", goal=f"< {GOAL_MB_PER_MIN:g} MB/min after warm-up",
                   ok=None if slope is None else slope < GOAL_MB_PER_MIN,
                   note=f"RSS start / middle / end {trio} MB; fitted over {len(points)} samples after "
                        f"{warmup_s:.0f} s; {setup}")

    pruned = delete_runs(run_ids)
    report.add("retention prune speed", pruned.events / pruned.seconds if pruned.seconds else None, "events/s",
               note=f"{pruned.line()} on {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
