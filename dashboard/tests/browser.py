"""Playwright helpers for browser tests: a real daphne server, Debian's Chromium, fixtures.

The fixtures are registered for every test under ``dashboard/tests`` by its conftest.py::

    import pytest
    from dashboard.tests import browser

    pytestmark = pytest.mark.browser

    def test_my_flow(daphne_server, browser_page):
        run_id = browser.start_run(browser_page, daphne_server, "amqp-routing", {"messages": 5, "rate": 0})
        browser.wait_until_finished(browser_page)
        browser.reveal_all(browser_page)
        summary = daphne_server.get_json(f"/api/runs/{run_id}/")
        assert browser.read_counters(browser_page) == {k: summary["counts"][k] for k in browser.read_counters(browser_page)}

``browser_page`` fails the test on any uncaught page error (``pageerror``) or console error.
Talk to the server through HTTP (``daphne_server.get_json``), not the ORM: it is another
process with its own database.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 720}
FINAL_STATES = ("succeeded", "failed", "cancelled")
# Chromium logs every 4xx/5xx fetch as a console error; the pages handle those answers.
EXPECTED_CONSOLE = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """daphne serving the dashboard on a free port, on a fresh SQLite database.

    ``suite_database``: under ``make test-external`` use the suite's PostgreSQL instead, so
    the server's runs are checked against the same database and Redis as the tests.
    """

    def __init__(self, extra_env: dict[str, str] | None = None, startup_timeout: float = 60.0,
                 suite_database: bool = False) -> None:
        self.extra_env = dict(extra_env or {})
        if suite_database and os.environ.get("DATABASE_URL", "").startswith("postgres"):
            self.extra_env.setdefault("DATABASE_URL", os.environ["DATABASE_URL"])
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp: Path | None = None
        self.port = 0
        self._cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self._cookies))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.tmp is not None, "server not started"
        return self.tmp / "daphne.log"

    def env(self) -> dict[str, str]:
        assert self.tmp is not None and self.port
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "DATABASE_URL": f"sqlite:///{self.tmp / 'db.sqlite3'}",
            # The server accepts browser requests and WebSockets from its own origin only.
            "FLOWS_ALLOWED_ORIGINS": self.url,
            **self.extra_env,
        }

    def start(self) -> LiveServer:
        self.tmp = Path(tempfile.mkdtemp(prefix="flows-live-"))
        self.port = free_port()
        env = self.env()
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "dashboard.asgi:application"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches its children too
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        last_error = ""

        def answers() -> bool:
            nonlocal last_error
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/health/", timeout=5) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
                return False

        try:
            wait_until(answers, self.startup_timeout, "daphne to answer /api/health/", step=0.1)
        except AssertionError:
            self.stop()
            raise RuntimeError(
                f"daphne did not answer /api/health/ within {self.startup_timeout:g} s ({last_error})") from None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            # SIGTERM lets daphne shut down cleanly (atexit stops embedded brokers).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- the HTTP API ---------------------------------------------------------------------

    def get_json(self, path: str) -> Any:
        with self._opener.open(f"{self.url}{path}", timeout=15) as response:
            return json.loads(response.read())

    def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        """POST with Django's CSRF cookie and header; returns (status, JSON body)."""
        token = next((c.value for c in self._cookies if c.name == "csrftoken"), None)
        if token is None:
            self.get_json("/api/workflows/")  # sets the csrftoken cookie
            token = next(c.value for c in self._cookies if c.name == "csrftoken")
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-CSRFToken": token},
        )
        try:
            with self._opener.open(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def all_events(self, run_id: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            page = self.get_json(f"/api/runs/{run_id}/events/?after={events[-1]['seq'] if events else 0}&limit=5000")
            events.extend(page["events"])
            if len(page["events"]) < 5000:
                return events


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright Browser on Debian's Chromium; skips on a laptop without it, fails in CI."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class PageErrors(list):
    """Uncaught exceptions and console errors of one page, as readable strings."""

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not EXPECTED_CONSOLE.search(message.text):
            self.append(f"console.error: {message.text}")


def new_page(browser: Any, **context_options: Any) -> tuple[Any, PageErrors]:
    """A fresh 1280×720 page (own context: cookies, storage) with its errors collected."""
    from playwright.sync_api import expect

    # A busy 2-core machine runs several browser tests at once: allow for slow frames.
    expect.set_options(timeout=15_000)
    context = browser.new_context(viewport=VIEWPORT, **context_options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors = PageErrors()
    errors.attach(page)
    return page, errors


# -- fixtures (registered by dashboard/tests/conftest.py) ----------------------------------


@pytest.fixture(scope="session")
def daphne_server() -> Iterator[LiveServer]:
    with LiveServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_server(rabbitmq_url: str) -> Iterator[LiveServer]:
    """daphne with AMQP on RabbitMQ, for workflows the embedded broker cannot run (``needs_external``)."""
    with LiveServer(extra_env={"AMQP_URL": rabbitmq_url}) as server:
        yield server


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def browser_page(chromium_browser: Any) -> Iterator[Any]:
    page, errors = new_page(chromium_browser)
    page.flow_errors = errors
    yield page
    page.context.close()
    assert not errors, "JavaScript errors in the page:\n" + "\n".join(errors)


# -- driving the dashboard ------------------------------------------------------------------


def start_run(page: Any, server: LiveServer, slug: str, params: dict[str, Any]) -> int:
    """Fill the workflow form (only the given params; the rest keep defaults), Start, return the run id."""
    page.goto(f"{server.url}/workflows/{slug}/")
    for name, value in params.items():
        field = page.locator(f"#param-{name}")
        kind = page.locator(f'[data-param="{name}"]').get_attribute("data-type")
        if kind == "bool":
            field.set_checked(bool(value))
        elif kind == "choice":
            field.select_option(label=str(value))
        elif kind == "multi":  # a checkbox per choice: exactly the given ones checked
            wanted = set(value.split(",") if isinstance(value, str) else value)
            for box in field.locator("input[type=checkbox]").all():
                box.set_checked(box.get_attribute("value") in wanted)
        elif kind == "json":
            field.fill(json.dumps(value))
        else:
            field.fill(str(value))
    page.click("#start")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    return int(re.search(r"/runs/(\d+)/$", page.url).group(1))


def compare_protocols() -> list[str]:
    """The sync-vs-async lanes this build has (each lane's module is there), in the workflow's order."""
    import importlib.util

    from flows.compare.lane import LANES, PROTOCOLS

    return [p for p in PROTOCOLS if importlib.util.find_spec(LANES[p].partition(":")[0]) is not None]


def wait_until_finished(page: Any, timeout_s: float = 60.0) -> str:
    """Wait until the run is in a final state and the stream has every event; return the state."""
    page.wait_for_function(
        """() => ["succeeded", "failed", "cancelled"].includes(document.querySelector("#run-state").dataset.state)
                 && document.querySelector("#connection").dataset.state === "complete" """,
        timeout=timeout_s * 1000,
    )
    return page.locator("#run-state").get_attribute("data-state")


def finished_run(page: Any, server: LiveServer, slug: str, params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start a run from the form, wait until it succeeded, reveal every event; (summary, events)."""
    run_id = start_run(page, server, slug, params)
    assert wait_until_finished(page) == "succeeded"
    reveal_all(page)
    return server.get_json(f"/api/runs/{run_id}/"), server.all_events(run_id)


def api_run(server: LiveServer, slug: str, params: dict[str, Any], timeout_s: float = 120.0) -> dict[str, Any]:
    """Start a run through the API (no browser), wait until it is final; its summary."""
    status, created = server.post_json("/api/runs/", {"workflow": slug, "params": params})
    assert status == 201, created
    path = f"/api/runs/{created['id']}/"
    wait_until(lambda: server.get_json(path)["state"] in FINAL_STATES, timeout_s, f"the {slug} run to finish", step=0.5)
    return server.get_json(path)


def reveal_all(page: Any) -> int:
    """Jump the timeline player to the end; return how many events are revealed.

    "The end" is at least the server's last recorded seq when this is called, so a player
    that has not yet counted the final events is waited for rather than read early.
    """
    recorded = page.evaluate("""async () => {
        const id = location.pathname.match(/runs\\/(\\d+)/)[1];
        return (await (await fetch(`/api/runs/${id}/`)).json()).last_seq; }""")
    # "Jump to end" is checked and clicked inside the page, in one step and again while
    # waiting: the player may reach the end by itself (disabling the button) at any moment.
    page.wait_for_function(
        """(recorded) => { const p = document.querySelector("#player");
                   const b = document.querySelector('[data-player="live"]');
                   if (!b.disabled) b.click();
                   return Number(p.dataset.total) >= recorded && p.dataset.index === p.dataset.total; }""",
        arg=recorded,
    )
    return int(page.locator("#player").get_attribute("data-index"))


def read_counters(page: Any) -> dict[str, int]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll("[data-counter]")]
                   .map((el) => [el.dataset.counter, Number(el.textContent)]))"""
    )


def plot_points(page: Any, div_id: str, trace_name: str) -> int:
    """How many points the plotly trace named ``trace_name`` in ``#div_id`` draws."""
    return page.evaluate(
        """([id, name]) => { const gd = document.getElementById(id);
                             const trace = (gd.data || []).find((t) => t.name === name);
                             return trace ? trace.x.length : -1; }""",
        [div_id, trace_name],
    )


def screenshot(page: Any, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def set_theme(page: Any, theme: str) -> None:
    """Switch theme the way a user does (the toggle button), and wait until it applies."""
    if page.evaluate("document.documentElement.dataset.theme") != theme:
        page.click("#theme-toggle")
    page.wait_for_function("(t) => document.documentElement.dataset.theme === t", arg=theme)
