"""Which browser origins may change state here or open a WebSocket: an explicit list.

Django's CSRF check accepts an ``Origin`` equal to the request's ``Host``, and Channels'
``AllowedHostsOriginValidator`` accepts any origin whose host is in ``ALLOWED_HOSTS``. With
``ALLOWED_HOSTS=*`` both let a page on any site that rebinds its DNS name to this server
(DNS rebinding) start runs and read streams; a page served by another local port is as
foreign. So the origin — scheme, host and port — must be one of ``FLOWS_ALLOWED_ORIGINS``
(default: this server's loopback origins on ``PORT``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize(origin: str) -> str | None:
    """``scheme://host:port`` in lower case with the port spelled out; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"


@lru_cache(maxsize=8)
def _allowed(configured: tuple[str, ...]) -> frozenset[str]:
    return frozenset(filter(None, (normalize(o) for o in configured)))


def is_allowed(origin: str, allowed: Iterable[str] | None = None) -> bool:
    """True when ``origin`` is exactly one of the allowed origins (default: the setting)."""
    configured = tuple(allowed if allowed is not None else settings.FLOWS_ALLOWED_ORIGINS)
    normalized = normalize(origin)
    return normalized is not None and normalized in _allowed(configured)


class OriginValidator:
    """ASGI middleware: refuse the WebSocket handshake (HTTP 403) unless its Origin is allowed.

    Browsers always send ``Origin`` on a WebSocket handshake; a client without one is
    refused, as Channels' validator did before.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            origin = next((v for k, v in scope.get("headers", []) if k == b"origin"), None)
            if origin is None or not is_allowed(origin.decode("latin-1")):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
