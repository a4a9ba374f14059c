"""Two web processes on one PostgreSQL and one Redis: a run started through one is followed
through the other, every event and the final summary.

The run executes in process A, which started it; process B has nothing of it in memory.
B's WebSocket client must get the events A stored before it connected from the database
and the rest as A sends them through channels-redis, gapless, then the final summary.
Then the same two processes behind nginx with deploy/nginx.conf, as docker-compose.yml
deploys them: pages, the API, the WebSocket upgrade, and a browser's cancel reaching the
process that runs its run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from dashboard.tests.browser import ROOT, LiveServer, free_port
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


def follow(server: LiveServer, run_id: int, timeout: float = 120, midway: Callable[[], None] | None = None,
           ) -> tuple[list[tuple[int, float, float]], dict, float]:
    """``[(seq, t_ms, received_at)]`` of every event, the final summary, and when the socket opened.

    ``midway`` is called once, after the first events arrived.
    """
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
                if midway is not None:
                    midway, call = None, midway
                    call()
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


def test_a_run_on_one_process_is_acted_on_through_the_other(two_web_processes):
    a, b = two_web_processes
    status, created = a.post_json("/api/runs/", {"workflow": "grpc-person", "params": {
        "calls": 20000, "rate": 100.0, "concurrency": 2, "delay_ms": 0, "error_rate": 0.0}})
    assert status == 201, created
    run_id = created["id"]
    wait_until(lambda: a.get_json(f"/api/runs/{run_id}/")["state"] == "running", 60, "the run to start")

    # B has nothing of the run in memory: it relays to A and answers with what A said.
    menu = b.get_json(f"/api/runs/{run_id}/actions/")["actions"]
    assert menu == a.get_json(f"/api/runs/{run_id}/actions/")["actions"]
    status, refused = b.post_json(f"/api/runs/{run_id}/actions/", {"action": "no-such-action"})
    assert status == 400 and "no-such-action" in refused["errors"]["action"]
    status, answer = b.post_json(f"/api/runs/{run_id}/actions/", {"action": "cancel"})
    assert status == 202 and answer["result"] == "run cancelled", answer

    wait_until(lambda: a.get_json(f"/api/runs/{run_id}/")["state"] == "cancelled", 60, "the run to stop")
    status, late = b.post_json(f"/api/runs/{run_id}/actions/", {"action": "cancel"})
    assert status == 409, late


# -- behind the compose file's proxy --------------------------------------------------------


def proxy_config(directory: Path, port: int, upstreams: dict[str, int]) -> Path:
    """deploy/nginx.conf with the compose service names pointing at local ports."""
    site = (ROOT / "deploy" / "nginx.conf").read_text().replace("listen 8000;", f"listen 127.0.0.1:{port};")
    for name, upstream_port in upstreams.items():
        site = site.replace(f"server {name}:8000;", f"server 127.0.0.1:{upstream_port};")
    (directory / "site.conf").write_text(site)
    main = directory / "nginx.conf"
    main.write_text(f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\nevents {{}}\n"
                    f"http {{ access_log off; client_body_temp_path {directory}; proxy_temp_path {directory};\n"
                    f"  include {directory}/site.conf; }}\n")
    return main


@pytest.fixture(scope="module")
def behind_proxy(postgres_url, redis_url, require_tool) -> Iterator[LiveServer]:
    """An HTTP client of the proxy (LiveServer's helpers, cookies included) in front of two web processes."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    require_tool("nginx", nginx is not None)
    port = free_port()
    client = LiveServer()
    client.port = port
    # Both processes see the browser's origin: the proxy's.
    shared = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "FLOWS_ALLOWED_ORIGINS": client.url}
    with LiveServer(extra_env=shared) as a, LiveServer(extra_env=shared) as b, \
            tempfile.TemporaryDirectory(prefix="flows-proxy-") as tmp:
        config = proxy_config(Path(tmp), port, {"web": a.port, "web2": b.port})
        check = subprocess.run([nginx, "-t", "-c", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, f"nginx rejects deploy/nginx.conf:\n{check.stderr}"
        proc = subprocess.Popen([nginx, "-c", str(config), "-g", "daemon off;"], start_new_session=True)
        def answers() -> bool:
            assert proc.poll() is None, (Path(tmp) / "error.log").read_text()
            try:
                return client.get_json("/api/health/") is not None
            except OSError:  # not listening yet
                return False

        try:
            wait_until(answers, 30, "nginx to answer", step=0.1)
            yield client
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


def test_behind_the_proxy_a_browser_starts_follows_and_cancels_a_run(behind_proxy):
    client = behind_proxy
    with client._opener.open(f"{client.url}/", timeout=15) as page:
        assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    status, created = client.post_json("/api/runs/", {"workflow": "grpc-person", "params": {
        "calls": 20000, "rate": 200.0, "concurrency": 2, "delay_ms": 0, "error_rate": 0.0}})
    assert status == 201, created
    run_id = created["id"]
    answers: list[tuple[int, dict]] = []

    def cancel() -> None:
        # The same cookie as the start: the proxy sends every request to the process running
        # the run (the other would answer 409, "not live in this server").
        for _ in range(4):
            assert "cancel" in client.get_json(f"/api/runs/{run_id}/actions/")["actions"]
        answers.append(client.post_json(f"/api/runs/{run_id}/actions/", {"action": "cancel"}))

    received, final, _ = follow(client, run_id, midway=cancel)

    assert answers[0][0] == 202, answers
    assert final["state"] == "cancelled"
    seqs = [seq for seq, _, _ in received]
    assert seqs == list(range(1, final["last_seq"] + 1)), "gapless through the proxy's WebSocket upgrade"
