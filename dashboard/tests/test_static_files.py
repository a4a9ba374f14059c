"""Static files as daphne serves them: compressed, cached for good under hashed names, and
the hashed ES modules importing each other by their hashed names."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from posixpath import dirname, normpath

from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage

from dashboard.asgi import application

PLOTLY = "vendor/plotly/plotly.min.js"
MODULE_IMPORT = re.compile(r'(?:from|import)\s*"(\.{1,2}/[^"]+)"')


def fetch(path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Through the whole ASGI application, as daphne calls it."""
    async def go() -> tuple[int, dict[str, str], bytes]:
        raw = [(k.lower().encode(), v.encode()) for k, v in {"host": "127.0.0.1", **(headers or {})}.items()]
        scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "headers": raw, "scheme": "http", "server": ("127.0.0.1", 80),
                 "client": ("127.0.0.1", 5000)}
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(10)
        body = b""
        while True:
            message = await communicator.receive_output(10)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body

    # On a thread of its own: a session's browser tests leave Playwright's event loop running on this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_plotly_goes_out_compressed_and_cached_for_good_under_its_hashed_name():
    url = staticfiles_storage.url(PLOTLY)
    assert re.search(r"plotly\.min\.[0-9a-f]{12}\.js$", url), url
    original = (settings.STATIC_ROOT / PLOTLY).stat().st_size

    status, headers, body = fetch(url, {"Accept-Encoding": "gzip, deflate, br"})

    assert status == 200
    assert headers["content-encoding"] == "br"
    assert len(body) < original / 3
    assert "immutable" in headers["cache-control"] and "max-age=315360000" in headers["cache-control"]
    assert headers["content-type"].startswith("text/javascript")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["vary"] == "Accept-Encoding"

    status, headers, _ = fetch(url, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    # A revalidating browser gets nothing again.
    status, _, body = fetch(url, {"If-None-Match": headers["etag"]})
    assert status == 304 and body == b""


def test_unhashed_names_are_served_but_only_briefly_cached():
    status, headers, _ = fetch("/static/js/api.js")
    assert status == 200
    assert headers["cache-control"] == "max-age=60, public"
    assert "access-control-allow-origin" not in headers


def test_an_unknown_static_path_is_django_404():
    status, _, _ = fetch("/static/js/no-such-module.js")
    assert status == 404


def test_every_hashed_module_imports_hashed_modules_that_exist():
    hashed = set(staticfiles_storage.hashed_files.values())
    modules = [name for name in hashed if name.startswith("js/") and name.endswith(".js")]
    assert len(modules) > 20
    checked = 0
    for name in modules:
        text = (settings.STATIC_ROOT / name).read_text()
        for relative in MODULE_IMPORT.findall(text):
            target = normpath(f"{dirname(name)}/{relative}")
            assert target in hashed, f"{name} imports {relative}, not a hashed file"
            checked += 1
    assert checked > 50
