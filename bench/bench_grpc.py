"""Instrumented ``grpc-person`` unary calls/s against bare grpcio on the same server.

Both sides run the same PersonService servicer on a loopback port, the same call plan
(alternating CreatePerson / GetPerson), the same client concurrency over one channel and
the same deadline. *Bare* is plain grpcio: the server has no hook and the client threads
just call the stub. *Instrumented* is a whole ``grpc-person`` run through the runner:
four recorded events per call, stored and streamed by the event pipeline in the same
process. Rounds alternate so drift (CPU boost, other load) hits both alike; the best
round of each is compared. Goal: instrumented ≥ 0.85 × bare.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .runs import run_workflow

CALLS = 3000
CONCURRENCY = 4
ROUNDS = 4
GOAL_RATIO = 0.85
PARAMS = {"calls": CALLS, "concurrency": CONCURRENCY, "delay_ms": 0, "deadline_ms": 5000, "error_rate": 0.0,
          "methods": "both", "rate": 0.0}


def bare_calls_per_s() -> float:
    import grpc

    from flows.grpc_gen import person_pb2, person_pb2_grpc
    from flows.services.person_grpc import PersonGrpcService, open_channel
    from flows.workflows.grpc_person import plan_call

    service = PersonGrpcService(delay_ms=0, emit=None, workers=CONCURRENCY + 2)
    service.start()
    channel = open_channel(service.target)
    try:
        grpc.channel_ready_future(channel).result(timeout=5)
        stub = person_pb2_grpc.PersonServiceStub(channel)
        methods = {"GetPerson": (stub.GetPerson, person_pb2.GetPersonRequest),
                   "CreatePerson": (stub.CreatePerson, person_pb2.CreatePersonRequest)}
        known = service.store.ids()
        lock = threading.Lock()
        counter = iter(range(CALLS))
        timeout = PARAMS["deadline_ms"] / 1000.0

        def worker() -> None:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                planned = plan_call(index, PARAMS, known)
                invoke, request_type = methods[planned.method]
                invoke(request_type(**planned.request), timeout=timeout)

        threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return CALLS / (time.perf_counter() - started)
    finally:
        channel.close()
        service.stop()


def instrumented_run() -> dict[str, Any]:
    finished, wall = run_workflow("grpc-person", PARAMS, timeout=90, problem=lambda r: (
        "" if r["codes"] == {"OK": CALLS} else f"unexpected codes {r['codes']}"))
    return {"calls_per_s": finished.result["throughput_per_s"], "wall_calls_per_s": CALLS / wall,
            "events": finished.summary["last_seq"]}


def timed(fn: Any) -> tuple[Any, float]:
    """fn's result and the process CPU time it took (all threads: client, server, pipeline)."""
    started = time.process_time()
    result = fn()
    return result, time.process_time() - started


def run(report: Any) -> None:
    import statistics

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    bare_calls_per_s()  # warm-up: imports, first server and channel
    bare: list[tuple[float, float]] = []
    instrumented: list[tuple[dict[str, Any], float]] = []
    for _ in range(ROUNDS):
        bare.append(timed(bare_calls_per_s))
        instrumented.append(timed(instrumented_run))
    best_bare = max(rate for rate, _ in bare)
    best = max((r for r, _ in instrumented), key=lambda r: r["calls_per_s"])
    ratio = best["calls_per_s"] / best_bare
    pair_ratios = [i["calls_per_s"] / b for (b, _), (i, _) in zip(bare, instrumented)]
    cpu_bare = statistics.median(cpu for _, cpu in bare) / CALLS * 1e6
    cpu_instrumented = statistics.median(cpu for _, cpu in instrumented) / CALLS * 1e6
    instrumented_rounds = ", ".join(f"{r['calls_per_s']:,.0f}" for r, _ in instrumented)
    setup = f"{CALLS} unary calls, {CONCURRENCY} client threads on one channel, delay 0, loopback, best of {ROUNDS}"
    report.add("grpc bare grpcio", best_bare, "calls/s",
               note=f"{setup}; rounds {', '.join(f'{b:,.0f}' for b, _ in bare)}; CPU {cpu_bare:,.0f} µs/call (median)")
    report.add("grpc-person instrumented", best["calls_per_s"], "calls/s",
               note=f"{best['events']} events stored and streamed per run; whole run incl. server start and flush "
                    f"{best['wall_calls_per_s']:,.0f} calls/s; rounds {instrumented_rounds}; "
                    f"CPU {cpu_instrumented:,.0f} µs/call (median)")
    report.add("grpc-person instrumented / bare", ratio, "×", goal=f"≥ {GOAL_RATIO}", ok=ratio >= GOAL_RATIO,
               note=f"round by round: {', '.join(f'{r:.2f}' for r in pair_ratios)}")
