"""Bench-only launcher: daphne serving the dashboard, plus an emitter driven over HTTP.

``python -m bench.pipeline_server --port P --control-port C`` migrates the database named
by ``DATABASE_URL``, starts a tiny control server on C and then runs daphne on P with
``dashboard.asgi:application`` — the product's own ASGI app, unchanged. The control
server (bench only, 127.0.0.1) accepts:

- ``POST /plans {"count": N, "rate": R}`` → ``{"run": id}``: a Run row and a tracked
  recorder, idle until started (so clients can connect first);
- ``POST /plans/<run>/start`` → starts emitting;
- ``GET /plans/<run>`` → emitter status (emitted, flushed, emit cost);
- ``GET /threads`` → CPU seconds per thread name;
- ``POST /cleanup`` → deletes the bench's runs and their events.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PLAN_PATH = re.compile(r"^/plans/(\d+)(/start)?$")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import daphne.server  # noqa: F401 - installs Twisted's asyncio reactor before anything imports Twisted
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    control = ThreadingHTTPServer(("127.0.0.1", args.control_port), ControlHandler)
    threading.Thread(target=control.serve_forever, name="bench-control", daemon=True).start()
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(["-b", "127.0.0.1", "-p", str(args.port), "-v", "0", "dashboard.asgi:application"])


class ControlHandler(BaseHTTPRequestHandler):
    plans: dict[int, Any] = {}

    def do_POST(self) -> None:  # http.server's naming
        from django.db import close_old_connections

        from .pipeline_emitter import EmitPlan

        close_old_connections()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/plans":
            plan = EmitPlan(int(body["count"]), float(body["rate"]))
            self.plans[plan.run.pk] = plan
            self._reply({"run": plan.run.pk})
            return
        if self.path == "/cleanup":
            self._reply({"deleted": cleanup(list(self.plans))})
            return
        match = PLAN_PATH.match(self.path)
        if match and match.group(2):
            self.plans[int(match.group(1))].start()
            self._reply({"started": True})
            return
        self._reply({"error": "not found"}, 404)

    def do_GET(self) -> None:  # http.server's naming
        if self.path == "/threads":
            self._reply(thread_cpu())
            return
        match = PLAN_PATH.match(self.path)
        plan = self.plans.get(int(match.group(1))) if match else None
        if plan is None:
            self._reply({"error": "not found"}, 404)
            return
        self._reply(plan.status())

    def _reply(self, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name (threads of one name summed): where the server's time goes."""
    import psutil

    names = {t.native_id: t.name for t in threading.enumerate()}
    totals: dict[str, float] = {}
    for thread in psutil.Process().threads():
        name = names.get(thread.id, "other")
        name = "bench-emitter" if name.startswith("bench-emitter") else name.split("_")[0]
        totals[name] = totals.get(name, 0.0) + thread.user_time + thread.system_time
    return totals


def cleanup(run_ids: list[int]) -> int:
    """Delete the bench's runs with plain SQL: the ORM's cascade would load every event."""
    from django.db import connection, transaction

    from flows.models import Event, Run

    if not run_ids:
        return 0
    marks = ", ".join(["%s"] * len(run_ids))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE run_id IN ({marks})", run_ids)
        cursor.execute(f"DELETE FROM {Run._meta.db_table} WHERE id IN ({marks})", run_ids)
        return cursor.rowcount


if __name__ == "__main__":
    main()
