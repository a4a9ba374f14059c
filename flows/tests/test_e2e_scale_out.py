"""Two web processes on one PostgreSQL and one Redis: a run started through one is followed
through the other, every event and the final summary.

The run executes in process A, which started it; process B has nothing of it in memory.
B's WebSocket client must get the events A stored before it connected from the database
and the rest as A sends them through channels-redis, gapless, then the final summary.
"""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from dashboard.tests.browser import LiveServer
from flows.tests.polling import wait_until

pytestmark = pytest.mark.stack

# gRPC runs in-process (no broker to start), and at this rate a run is a few thousand
# events in a few seconds: busy enough that most arrive live through the channel layer.
RUN = {"workflow": "grpc-person",
       "params": {"calls": 1500, "rate": 600.0, "concurrency": 4, "delay_ms": 0, "error_rate": 0.1}}


@pytest.fixture(scope="module")
def two_web_processes(postgres_url, redis_url):
    # Both processes on the same database and channel layer, as deployed behind a proxy.
    shared = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    with LiveServer(extra_env=shared) as a, LiveServer(extra_env=shared) as b:
        yield a, b


def follow(server: LiveServer, run_id: int, timeout: float = 120) -> tuple[list[tuple[int, float, float]], dict, float]:
    """``[(seq, t_ms, received_at)]`` of every event, the final summary, and when the socket opened."""
    received: list[tuple[int, float, float]] = []
    deadline = time.monotonic() + timeout
    with connect(f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}/?after=0", origin=server.url, open_timeout=10) as ws:
        opened = time.monotonic()
        final = None
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
            now = time.monotonic()
            if message["type"] == "events":
                received.extend((e["seq"], e["t_ms"], now) for e in message["events"])
                ws.send(json.dumps({"type": "ack", "seq": received[-1][0]}))
            elif message["type"] == "summary" and message["summary"]["state"] not in ("pending", "running"):
                final = message["summary"]
            if final is not None and (received[-1][0] if received else 0) >= final["last_seq"]:
                return received, final, opened
    raise TimeoutError(f"run {run_id} did not finish within {timeout} s")


def live_latencies_ms(received: list[tuple[int, float, float]], opened: float) -> list[float]:
    """Receive time minus emit time, sorted, of events emitted after the socket opened.

    Emit times are the run's own clock (``t_ms``), anchored at the fastest event: a lower
    bound by that event's few milliseconds, which is good enough to report.
    """
    offsets = [at - t_ms / 1000 for _, t_ms, at in received]
    anchor = min(offsets)
    return sorted((offset - anchor) * 1000 for offset, (_, t_ms, _) in zip(offsets, received)
                  if anchor + t_ms / 1000 >= opened)


def test_a_run_started_on_one_process_is_followed_gaplessly_through_the_other(two_web_processes):
    a, b = two_web_processes
    status, created = a.post_json("/api/runs/", RUN)
    assert status == 201, created
    run_id = created["id"]
    # Connect once A has stored some events, so B serves both paths: those from the database,
    # the rest live through Redis.
    wait_until(lambda: a.get_json(f"/api/runs/{run_id}/events/?after=0&limit=50")["events"][49:], 60,
               "process A to store the run's first events")

    received, final, opened = follow(b, run_id)

    assert final["state"] == "succeeded", final["error"]
    seqs = [seq for seq, _, _ in received]
    assert seqs == list(range(1, final["last_seq"] + 1)), "gapless from 1, none twice"
    assert final["counts"]["events"] == len(seqs)
    # The same log process A serves: B relayed A's events, not a copy of its own.
    assert [e["seq"] for e in a.all_events(run_id)] == seqs
    assert b.get_json(f"/api/runs/{run_id}/")["state"] == "succeeded"
    live = live_latencies_ms(received, opened)
    assert live, "no event was emitted after B's client connected: the run is too short to test the live path"
    assert len(live) < len(seqs), "every event was emitted after B's client connected: no catch-up was tested"
    p99 = live[min(len(live) - 1, int(len(live) * 0.99))]
    print(f"\nrun {run_id}: {len(seqs)} events through process B; {len(live)} emitted after its client "
          f"connected, emit→receive p99 {p99:.1f} ms, median {live[len(live) // 2]:.1f} ms")
