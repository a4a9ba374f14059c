"""A server killed mid-run: once restarted, it says the run failed before anyone starts another."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import pytest

from dashboard.tests.browser import ROOT, LiveServer, free_port

from .polling import wait_until

pytestmark = pytest.mark.stack


def restart(server: LiveServer) -> None:
    """SIGKILL daphne (no clean shutdown) and start it again on the same database."""
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    server.port = free_port()
    with open(server.log_path, "ab") as log:
        server.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(server.port), "dashboard.asgi:application"],
            cwd=ROOT, env=server.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server._wait_ready()


def test_a_run_orphaned_by_a_killed_server_is_failed_when_it_starts_again():
    with LiveServer(suite_database=True) as server:
        # Slow enough to be mid-way when the server dies.
        status, created = server.post_json("/api/runs/", {"workflow": "http-crud", "params": {
            "persons": 50, "repeat": 20, "delay_ms": 0, "rate": 5}})
        assert status == 201, created
        run_id = created["id"]
        wait_until(lambda: server.get_json(f"/api/runs/{run_id}/")["last_seq"] >= 3, 30,
                   "the run to record something", step=0.05)
        try:
            restart(server)
            summary = server.get_json(f"/api/runs/{run_id}/")
            assert summary["state"] == "failed"
            assert summary["error"] == "the server stopped during this run"
            assert summary["finished_at"] is not None
            # What was stored before the kill is kept, gapless, and nothing was added to it.
            events = server.all_events(run_id)
            assert [e["seq"] for e in events] == list(range(1, summary["last_seq"] + 1))
            assert summary["counts"]["events"] == len(events) and "done" not in {e["kind"] for e in events}
            listed = server.get_json("/api/runs/")["runs"]
            assert next(r for r in listed if r["id"] == run_id)["state"] == "failed"
        finally:
            with contextlib.suppress(Exception):
                server.stop()
