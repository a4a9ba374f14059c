"""The largest allowed run of every workflow, followed end to end over a real WebSocket.

daphne on a free port with the default embedded brokers; each workflow runs with every
parameter that makes a run bigger at its declared maximum (and the ones that only make it
slower at their fastest). Every frame the client receives must stay well under daphne's
1 MiB limit, the events must arrive gapless, and the final summary must come.
"""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from dashboard.tests.browser import LiveServer
from flows import registry

pytestmark = pytest.mark.stack

FRAME_LIMIT = 512 * 1024
# Parameters that only make a run slower, not bigger: at their fastest.
FASTEST = {"rate": 0.0, "delay_ms": 0, "work_ms": 0, "process_ms": 0, "restart_ms": 0}
# Shares of calls the server fails: at 1.0 nothing succeeds, and no bigger for it.
AS_DECLARED = {"error_rate"}
EXCEPTIONS = {
    # Validation: with crash_at the task must run long enough for the kill to land in it.
    "celery-order": {"work_ms": 200},
    # Message values are never in events or the result; 200,000 × 100 kB would be 20 GB.
    "kafka-partitions": {"message_bytes": 100},
    # At the largest, four groups of eight members (32 librdkafka consumers on this machine's two
    # cores) cost about a millisecond of CPU per delivery: 50,000 messages took 129 s. A million
    # messages crashed half-way is `make bench`'s (bench/bench_kafka.py, 2 groups of 1 member);
    # here 20,000 messages, every other parameter at its largest.
    "kafka-consumer-groups": {"message_bytes": 100, "messages": 20_000, "crash_at": 20_000},
    # Validation: the retries of one message may wait 60 s in all; the largest run needs no long waits.
    "amqp-dead-letter": {"retry_delay_ms": 10},
}


def largest_params(slug: str) -> dict:
    params = {}
    for name, param in registry.get(slug).params.items():
        if name in FASTEST:
            params[name] = FASTEST[name]
        elif name in AS_DECLARED:
            params[name] = param.default
        elif param.max is not None:
            params[name] = int(param.max) if param.type == "int" else param.max
    return {**params, **EXCEPTIONS.get(slug, {})}


@pytest.fixture(scope="module")
def server():
    with LiveServer(suite_database=True) as live:
        yield live


@pytest.fixture(scope="module")
def rabbitmq_server(rabbitmq_url):
    """For a workflow the embedded broker cannot run (``needs_external``)."""
    with LiveServer(suite_database=True, extra_env={"AMQP_URL": rabbitmq_url}) as live:
        yield live


def follow(server: LiveServer, run_id: int, timeout: float = 240) -> tuple[int, list[int], dict, int]:
    """(events received, their seqs, the final summary, the largest frame in bytes)."""
    seqs: list[int] = []
    largest = 0
    final: dict | None = None
    deadline = time.monotonic() + timeout
    url = f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}/?after=0"
    # max_size=None: measure a frame over the limit instead of the client refusing it.
    with connect(url, origin=server.url, open_timeout=10, max_size=None) as ws:
        while time.monotonic() < deadline:
            raw = ws.recv(timeout=deadline - time.monotonic())
            largest = max(largest, len(raw.encode() if isinstance(raw, str) else raw))
            message = json.loads(raw)
            if message["type"] == "events":
                seqs.extend(e["seq"] for e in message["events"])
                ws.send(json.dumps({"type": "ack", "seq": seqs[-1]}))
            elif message["type"] == "summary":
                if message["summary"]["state"] not in ("pending", "running"):
                    final = message["summary"]
            else:
                pytest.fail(f"unexpected frame {raw[:200]}")
            # A client that fell behind gets the final summary before the last events.
            if final is not None and (seqs[-1] if seqs else 0) >= final["last_seq"]:
                return len(seqs), seqs, final, largest
    raise TimeoutError(f"run {run_id} did not finish within {timeout} s")


@pytest.mark.parametrize("slug", list(registry.WORKFLOWS))
def test_the_largest_run_of_every_workflow_streams_in_bounded_frames(server, request, slug):
    if registry.get(slug).needs_external:
        server = request.getfixturevalue("rabbitmq_server")
    params = largest_params(slug)
    status, created = server.post_json("/api/runs/", {"workflow": slug, "params": params})
    assert status == 201, created
    started = time.monotonic()
    count, seqs, summary, largest = follow(server, created["id"])
    took = time.monotonic() - started
    print(f"\n{slug}: {count} events, largest frame {largest} B, {took:.1f} s")

    assert summary["state"] == "succeeded", summary["error"]
    assert largest < FRAME_LIMIT
    assert seqs == list(range(1, summary["last_seq"] + 1)), "gapless from 1, none twice"
    assert summary["counts"]["events"] == count
    # The whole result is served over HTTP; the summary's copy says whether it was cut.
    whole = server.get_json(f"/api/runs/{created['id']}/result/")["result"]
    cut = summary["result"].get("truncated")
    if cut:
        assert cut["full"] == f"/api/runs/{created['id']}/result/"
        assert len(json.dumps(whole)) > len(json.dumps(summary["result"]))
    else:
        assert whole == summary["result"]
