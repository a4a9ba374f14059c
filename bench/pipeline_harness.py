"""Processes for the pipeline bench: the daphne server (with its emitter) and the clients.

The server runs ``bench.pipeline_server`` in its own process with the variant's
environment (database, channel layer); clients run ``bench.pipeline_client`` in another,
so neither steals the other's GIL — on a 2-core machine they still share the cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.transports.base import port_open

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
CONNECTIONS_PER_PROCESS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ScenarioResult:
    status: dict[str, Any]
    clients: list[dict[str, Any]]
    rss_before: int = 0
    server_cpu_s: float = 0.0
    thread_cpu_s: dict[str, float] = field(default_factory=dict)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def rss_peak(self) -> int:
        return max([rss for _, rss in self.rss_samples] or [self.rss_before])


class BenchServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.control_port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        # The server accepts WebSockets from its own origin only (dashboard/origins.py).
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "FLOWS_ALLOWED_ORIGINS": self.origin, **env}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> BenchServer:
        cmd = [sys.executable, "-m", "bench.pipeline_server", "--port", str(self.port), "--control-port", str(self.control_port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_open("127.0.0.1", self.port) and port_open("127.0.0.1", self.control_port)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("bench server did not start")
            time.sleep(0.1)
        import psutil

        self.ps = psutil.Process(self.proc.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        try:
            self._call("POST", "/cleanup", {})
        except Exception:  # noqa: BLE001 - best effort; the server is going away anyway
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def _call(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=130) as response:
            return json.loads(response.read())

    def scenario(self, count: int, rate: float, connections: int = 1, stalled: int = 0, timeout_s: float = 120.0,
                 sample_rss: bool = False, follow_through: BenchServer | None = None) -> ScenarioResult:
        """Plan a run, connect the clients, start emitting, wait for every client to finish.

        ``stalled`` more connections stop reading after their first batch and read again
        once the run has been emitted and stored. ``follow_through``: the clients connect
        to that other web process (same database and channel layer) instead of this one.
        """
        run_id = self._call("POST", "/plans", {"count": count, "rate": rate})["run"]
        procs = (follow_through or self)._start_clients(run_id, count, connections, stalled)
        try:
            result = ScenarioResult(status={}, clients=[], rss_before=self.rss())
            cpu_before, threads_before = self.cpu_s(), self._call("GET", "/threads")
            self._call("POST", f"/plans/{run_id}/start", {})
            self._wait_for_clients(run_id, procs, resume=procs[-1] if stalled else None, timeout_s=timeout_s,
                                   rss_samples=result.rss_samples if sample_rss else None)
            for proc in procs:
                if proc.poll() is None:  # out of time: what it would have printed is lost
                    proc.kill()
                result.clients += [json.loads(line) for line in proc.stdout.read().splitlines() if line.startswith("{")]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        deadline = time.monotonic() + 60
        while not (status := self._call("GET", f"/plans/{run_id}"))["done"] and time.monotonic() < deadline:
            time.sleep(0.1)
        result.status = status
        result.server_cpu_s = self.cpu_s() - cpu_before
        threads_after = self._call("GET", "/threads")
        result.thread_cpu_s = {k: v - threads_before.get(k, 0.0) for k, v in threads_after.items()}
        return result

    def _start_clients(self, run_id: int, count: int, connections: int, stalled: int) -> list[subprocess.Popen]:
        """Client processes, each ``ready`` (in the run's group); the stalled ones last."""
        url = f"ws://127.0.0.1:{self.port}/ws/runs/{run_id}/"
        # Reading connections spread over processes of at most CONNECTIONS_PER_PROCESS, so
        # ten clients can use both cores when the server leaves one idle.
        groups = [(min(CONNECTIONS_PER_PROCESS, connections - n), False) for n in range(0, connections, CONNECTIONS_PER_PROCESS)]
        groups += [(stalled, True)] if stalled else []
        procs = []
        try:
            for n, stall in groups:
                cmd = [sys.executable, "-m", "bench.pipeline_client", url, self.origin, str(count), "--connections", str(n)]
                procs.append(subprocess.Popen(cmd + (["--stall"] if stall else []), cwd=ROOT, stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, text=True))
            for proc in procs:
                line = proc.stdout.readline().strip()
                if line != "ready":
                    raise RuntimeError(f"client did not get ready: {line!r}")
        except BaseException:
            for proc in procs:
                proc.kill()
                proc.wait()
            raise
        return procs

    def _wait_for_clients(self, run_id: int, procs: list[subprocess.Popen], resume: subprocess.Popen | None,
                          timeout_s: float, rss_samples: list[tuple[float, int]] | None) -> None:
        deadline = time.monotonic() + timeout_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if rss_samples is not None:
                rss_samples.append((time.monotonic(), self.rss()))
            if resume is not None and self._call("GET", f"/plans/{run_id}")["done"]:
                resume.stdin.write("resume\n")
                resume.stdin.flush()
                resume = None
            time.sleep(0.2)
