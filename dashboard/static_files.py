"""Static files answered from STATIC_ROOT by WhiteNoise, before Django sees the request.

WhiteNoise picks the brotli or gzip copy the browser accepts, answers ``If-None-Match``
with 304, and marks hashed names cacheable for a year, so the 4.6 MB plotly bundle crosses
the wire as 1.1 MB once per version instead of whole on every page load. WhiteNoise itself
speaks WSGI; this is the ASGI side: a file is sent from the event loop in large chunks.
``ASGIStaticFilesHandler`` read each whole file into memory, before its first byte went
out, on the one shared thread that also serves the JSON API, so a page load held up a live
run's first API calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from whitenoise.middleware import WhiteNoiseMiddleware

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]
# The compressed files are in the page cache after the first request: a read this size
# takes well under a millisecond, cheaper than handing it to a thread.
CHUNK = 256 * 1024


class _StaticIndex(WhiteNoiseMiddleware):
    """WhiteNoise's index of STATIC_ROOT, configured from the WHITENOISE_* settings."""

    def add_mime_headers(self, headers: Any, path: str, url: str) -> None:
        super().add_mime_headers(headers, path, url)
        # Django's SecurityMiddleware never sees these responses: without nosniff a
        # browser could sniff a wrong type into script.
        headers["X-Content-Type-Options"] = "nosniff"


def _wsgi_style_headers(scope: Scope) -> dict[str, str]:
    return {"HTTP_" + name.decode("latin-1").upper().replace("-", "_"): value.decode("latin-1")
            for name, value in scope.get("headers", [])}


class StaticFilesHandler:
    """ASGI middleware: ``/static/…`` files from WhiteNoise, every other request to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.index = _StaticIndex()

    def find(self, path: str) -> Any:
        if not path.startswith(self.index.static_prefix):
            return None
        return self.index.find_file(path) if self.index.autorefresh else self.index.files.get(path)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        static_file = self.find(scope["path"]) if scope["type"] == "http" else None
        if static_file is None:
            await self.app(scope, receive, send)
            return
        response = static_file.get_response(scope["method"], _wsgi_style_headers(scope))
        await send({"type": "http.response.start", "status": int(response.status),
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]})
        if response.file is None:
            await send({"type": "http.response.body", "body": b""})
            return
        with response.file as file:
            while chunk := file.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
