"""What a run page's plotly.min.js costs: bytes on the wire, and the API calls it holds up.

One daphne process serving the dashboard (embedded defaults, a temporary SQLite file). The
run page names plotly's URL; it is fetched as Chromium asks for it (``Accept-Encoding:
gzip, deflate, br``) and the body bytes as sent are counted. Then a page load is played
REPEAT times: every static file the page and its modules load, over six connections as
Chromium does, with plotly first, and together with them the run page's first API call
(the run's events); that call's time is set beside the same call on an idle server.

``BENCH_STATIC_CHECKOUT=/path`` serves another checkout of the app (an export of an older
commit, say) with the same steps, for a before/after figure.
"""

from __future__ import annotations

import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from posixpath import dirname, normpath

from flows.transports.base import port_open

from .pipeline_harness import ROOT, START_TIMEOUT_S, free_port
from .report import Report

REPEAT = 10
BROWSER_ENCODINGS = "gzip, deflate, br"
# Chromium opens at most six HTTP/1.1 connections to one host.
CONNECTIONS = 6
STATIC_URL = re.compile(r'(?:href|src|data-module|data-plotly-src)="(/static/[^"]+)"')
MODULE_IMPORT = re.compile(r'(?:from|import)\s*"(\.{1,2}/[^"]+\.js)"')
BYTES_GOAL = 1_500_000
DELAY_GOAL_MS = 100.0


class Server:
    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="bench-static-")
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "REDIS_URL": "memory://",
                    "DATABASE_URL": f"sqlite:///{self.tmp}/db.sqlite3", "PYTHONDONTWRITEBYTECODE": "1",
                    "FLOWS_ALLOWED_ORIGINS": f"http://127.0.0.1:{self.port}"}

    def __enter__(self) -> Server:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=self.checkout,
                       env=self.env, check=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                                      "-v", "0", "dashboard.asgi:application"], cwd=self.checkout, env=self.env)
        deadline = time.monotonic() + START_TIMEOUT_S + 60  # a first start compresses plotly
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("daphne did not start")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(15)

    def get(self, path: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, dict, bytes]:
        """Status, headers and the body exactly as sent (not decompressed)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("POST" if body else "GET", path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


def page_assets(server: Server, page: str) -> list[str]:
    """Every static URL the page loads: what it names, and the module graph its scripts import."""
    found = list(dict.fromkeys(STATIC_URL.findall(page)))
    for url in found:  # grows while walking: a breadth-first walk of the imports
        if url.endswith(".js") and "plotly" not in url:
            text = server.get(url)[2].decode(errors="replace")
            for relative in MODULE_IMPORT.findall(text):
                target = normpath(f"{dirname(url)}/{relative}")
                if target not in found:
                    found.append(target)
    return found


def load_page(server: Server, assets: list[str]) -> None:
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(lambda url: server.get(url, {"Accept-Encoding": BROWSER_ENCODINGS}), assets))


def timed(server: Server, path: str) -> float:
    started = time.perf_counter()
    server.get(path)
    return (time.perf_counter() - started) * 1000


def run(report: Report) -> None:
    checkout = Path(os.environ.get("BENCH_STATIC_CHECKOUT", ROOT))
    label = "static" + ("" if checkout == ROOT else f"[{checkout}]")
    with Server(checkout) as server:
        # A run to open: http-crud runs in-process, and one quick run is enough.
        token = re.search(r"csrftoken=([^;]+)", server.get("/api/workflows/")[1].get("set-cookie", "")).group(1)
        origin = {"Origin": f"http://127.0.0.1:{server.port}", "Content-Type": "application/json",
                  "Cookie": f"csrftoken={token}", "X-CSRFToken": token}
        status, _, created = server.get("/api/runs/", origin, b'{"workflow": "http-crud", "params": {"persons": 1}}')
        run_id = int(re.search(rb'"id":\s*(\d+)', created).group(1)) if status == 201 else None
        if run_id is None:
            report.add(f"{label}: run page", None, "", ok=False, note=f"could not start a run: {status} {created[:200]!r}")
            return
        page = server.get(f"/runs/{run_id}/")[2].decode()
        plotly = re.search(r'data-plotly-src="([^"]+)"', page).group(1)
        _, headers, body = server.get(plotly, {"Accept-Encoding": BROWSER_ENCODINGS})
        report.add(f"{label}: plotly.min.js on the wire, first page load", len(body), "bytes",
                   goal=f"<= {BYTES_GOAL:,} bytes", ok=len(body) <= BYTES_GOAL,
                   note=f"Content-Encoding {headers.get('content-encoding', 'none')}; "
                        f"Cache-Control {headers.get('cache-control', 'none')}")

        # A first visit: nothing cached, plotly requested first (the charts ask for it as
        # the page starts), then everything else the page and its modules load.
        assets = [plotly] + [url for url in page_assets(server, page) if url != plotly]
        api = f"/api/runs/{run_id}/events/?after=0"
        idle = statistics.median(timed(server, api) for _ in range(REPEAT))
        during = []
        with ThreadPoolExecutor(1) as loader:
            for _ in range(REPEAT):
                loading = loader.submit(load_page, server, assets)
                time.sleep(0.005)  # the page's requests go out first
                during.append(timed(server, api))
                loading.result()
        delay = statistics.median(during) - idle
        report.add(f"{label}: a run's first API call, delay while plotly loads (median of {REPEAT})", delay, "ms",
                   goal=f"<= {DELAY_GOAL_MS:g} ms", ok=delay <= DELAY_GOAL_MS,
                   note=f"{len(assets)} static files over {CONNECTIONS} connections; idle {idle:.1f} ms; "
                        f"during the page load median {statistics.median(during):.1f} ms, "
                        f"max {max(during):.1f} ms; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
