"""Security defaults: explicit allowed origins (HTTP and WebSocket), CSP, nosniff, start-up checks."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from dashboard import checks, origins
from dashboard.asgi import application
from dashboard.tests.browser import LiveServer
from flows.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
PORT = 8123
ALLOWED = [f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}", f"http://[::1]:{PORT}"]
FOREIGN = [
    f"http://127.0.0.1:{PORT + 1}",  # another local port is another site
    "http://evil.example",
    f"https://127.0.0.1:{PORT}",  # another scheme
    "null",
    "http://127.0.0.1:99999",
]


@pytest.fixture
def allowed(settings):
    settings.FLOWS_ALLOWED_ORIGINS = ALLOWED
    settings.ALLOWED_HOSTS = ["*"]
    return ALLOWED


def test_origin_matching_is_exact_on_scheme_host_and_port():
    assert origins.is_allowed("http://127.0.0.1:8000", ["http://127.0.0.1:8000"])
    assert origins.is_allowed("HTTP://LOCALHOST:80", ["http://localhost"])
    assert origins.is_allowed("http://[::1]:8000", ["http://[::1]:8000"])
    assert not origins.is_allowed("http://127.0.0.1:8001", ["http://127.0.0.1:8000"])
    assert not origins.is_allowed("http://127.0.0.1", ["http://127.0.0.1:8000"])
    assert not origins.is_allowed("http://127.0.0.1.evil.example:8000", ["http://127.0.0.1:8000"])
    assert not origins.is_allowed("garbage", ["http://127.0.0.1:8000"])


# -- HTTP: state-changing requests -------------------------------------------------------


def csrf_post(origin: str | None, host: str) -> tuple[int, dict]:
    """A POST as a browser page would send it: CSRF cookie and header, Origin and Host."""
    client = Client(enforce_csrf_checks=True)
    token = client.get("/api/workflows/", HTTP_HOST=host).cookies["csrftoken"].value
    headers = {"HTTP_HOST": host, "HTTP_X_CSRFTOKEN": token}
    if origin is not None:
        headers["HTTP_ORIGIN"] = origin
    # An unknown workflow: a POST that passes every check answers 400 naming it, and no run starts.
    response = client.post("/api/runs/", json.dumps({"workflow": "no-such-flow"}), content_type="application/json",
                           **headers)
    return response.status_code, response.json()


@pytest.mark.parametrize("origin", FOREIGN)
def test_a_foreign_origin_cannot_post(allowed, origin):
    status, body = csrf_post(origin, f"127.0.0.1:{PORT}")
    assert status == 403 and "not allowed" in body["errors"]["origin"]


def test_an_origin_equal_to_its_host_is_not_enough(allowed):
    # DNS rebinding: evil.example resolves to this server, so Origin and Host agree.
    status, body = csrf_post("http://evil.example:8123", "evil.example:8123")
    assert status == 403 and "origin" in body["errors"]
    assert Run.objects.count() == 0


@pytest.mark.parametrize("origin", ALLOWED)
def test_the_allowed_origins_can_post(allowed, origin):
    host = origin.split("://", 1)[1]
    status, body = csrf_post(origin, host)
    assert status == 400 and "workflow" in body["errors"]


def test_requests_without_an_origin_keep_working(allowed):
    status, body = csrf_post(None, f"127.0.0.1:{PORT}")
    assert status == 400 and "workflow" in body["errors"]


def test_safe_methods_from_anywhere_are_not_refused(allowed):
    response = Client().get("/api/workflows/", HTTP_ORIGIN="http://evil.example")
    assert response.status_code == 200


# -- WebSocket handshake -----------------------------------------------------------------


def ws_connect(origin: str | None, host: str = f"127.0.0.1:{PORT}") -> bool:
    async def attempt() -> bool:
        headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    run = Run.objects.create(workflow="http-crud")
    return asyncio.run(attempt())


@pytest.mark.parametrize("origin", [*FOREIGN, None])
def test_a_foreign_origin_cannot_open_a_websocket(allowed, origin):
    assert ws_connect(origin) is False


@pytest.mark.parametrize("origin", ALLOWED)
def test_the_allowed_origins_can_open_a_websocket(allowed, origin):
    assert ws_connect(origin, host=origin.split("://", 1)[1]) is True


def test_default_allowed_origins_are_loopback_on_the_served_port():
    env = {**os.environ, "PORT": "8765", "FLOWS_ALLOWED_ORIGINS": ""}
    code = "from django.conf import settings; print(','.join(settings.FLOWS_ALLOWED_ORIGINS))"
    out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert out.split(",") == ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"]


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/workflows/http-crud/", "/runs/", "/api/workflows/"])
def test_every_page_has_a_content_security_policy(path):
    response = Client().get(path)
    assert response.status_code == 200
    policy = dict(
        (d.split(" ", 1) + [""])[:2] for d in (part.strip() for part in response["Content-Security-Policy"].split(";"))
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'", "no inline script, no eval"
    assert policy["connect-src"] == "'self' ws://testserver wss://testserver"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["img-src"] == "'self' data: blob:"


def test_static_files_are_served_with_nosniff():
    async def fetch() -> dict:
        # Through the whole ASGI application, as daphne calls it (the Django test client
        # would skip the static files handler).
        scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/static/js/api.js",
                 "raw_path": b"/static/js/api.js", "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
                 "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(10)
        while (await communicator.receive_output(10)).get("more_body"):
            pass
        return start

    response = asyncio.run(fetch())
    headers = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    assert response["status"] == 200
    assert headers["content-type"].startswith("text/javascript")
    assert headers["x-content-type-options"] == "nosniff"


# -- start-up checks -----------------------------------------------------------------------


@pytest.mark.parametrize("host, key, debug, ids", [
    ("127.0.0.1", checks.DEFAULT_SECRET_KEY, False, []),
    ("::1", checks.DEFAULT_SECRET_KEY, False, []),
    ("localhost", checks.DEFAULT_SECRET_KEY, False, []),
    ("0.0.0.0", checks.DEFAULT_SECRET_KEY, False, ["dashboard.E001"]),
    ("192.168.1.10", checks.DEFAULT_SECRET_KEY, False, ["dashboard.E001"]),
    ("0.0.0.0", checks.DEFAULT_SECRET_KEY, True, ["dashboard.W001"]),
    ("0.0.0.0", "a-long-random-key-of-this-deployment", False, []),
])
def test_the_default_secret_key_beyond_loopback(settings, host, key, debug, ids):
    settings.FLOWS_LISTEN_HOST, settings.SECRET_KEY, settings.DEBUG = host, key, debug
    assert [m.id for m in checks.check_public_defaults()] == ids


def test_allowed_hosts_star_warns(settings):
    settings.ALLOWED_HOSTS = ["*"]
    messages = checks.check_public_defaults()
    assert [m.id for m in messages] == ["dashboard.W002"] and "ALLOWED_HOSTS=*" in messages[0].msg


def test_startup_refuses_the_default_key_beyond_loopback(settings, capsys):
    settings.FLOWS_LISTEN_HOST = "0.0.0.0"
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        checks.enforce_at_startup()
    assert "dashboard.E001" in capsys.readouterr().err


def serve_import(**env: str) -> subprocess.CompletedProcess:
    """Import the ASGI application as daphne does, with this environment."""
    full = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    full.update({"DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1", **env})
    return subprocess.run([sys.executable, "-c", "import dashboard.asgi"], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


def test_the_server_does_not_start_on_a_public_address_with_the_default_key():
    refused = serve_import(FLOWS_LISTEN_HOST="0.0.0.0")
    assert refused.returncode != 0 and "dashboard.E001" in refused.stderr and "SECRET_KEY" in refused.stderr
    started = serve_import(FLOWS_LISTEN_HOST="0.0.0.0", SECRET_KEY="a-long-random-key-of-this-deployment",
                           ALLOWED_HOSTS="*")
    assert started.returncode == 0, started.stderr
    assert "dashboard.W002" in started.stderr


# -- a real server with ALLOWED_HOSTS=* (DNS rebinding) -----------------------------------


def handshake_status(port: int, host: str, origin: str, path: str = "/ws/runs/1/") -> int:
    """The HTTP status a WebSocket handshake with this Host and Origin gets (101 = accepted)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request.encode())
        return int(sock.recv(1024).split(b" ", 2)[1])


def test_a_server_with_allowed_hosts_star_refuses_rebound_origins():
    with LiveServer(extra_env={"ALLOWED_HOSTS": "*"}) as server:
        rebound = f"evil.example:{server.port}"
        assert handshake_status(server.port, rebound, f"http://{rebound}") == 403
        assert handshake_status(server.port, f"127.0.0.1:{server.port}", f"http://127.0.0.1:{server.port + 1}") == 403
        assert handshake_status(server.port, f"127.0.0.1:{server.port}", server.url) == 101

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(f"{server.url}/api/workflows/", timeout=15).read()
        token = next(c.value for c in jar if c.name == "csrftoken")

        def post(host: str, origin: str) -> tuple[int, dict]:
            request = urllib.request.Request(
                f"{server.url}/api/runs/", data=json.dumps({"workflow": "no-such-flow"}).encode(), method="POST",
                headers={"Host": host, "Origin": origin, "Content-Type": "application/json", "X-CSRFToken": token,
                         "Cookie": f"csrftoken={token}"})
            try:
                with urllib.request.urlopen(request, timeout=15) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, body = post(rebound, f"http://{rebound}")
        assert status == 403 and "origin" in body["errors"]
        status, body = post(f"127.0.0.1:{server.port}", server.url)
        assert status == 400 and "workflow" in body["errors"]
