"""The instructor link, the only place the token is shown: printed once, when the server starts."""

from __future__ import annotations

import re
import socket
import sys
import threading
from functools import wraps
from typing import TextIO
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

from classroom import auth
from dashboard import origins
from dashboard.checks import PUBLIC_SECRET_KEYS

TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")
_announced = False
_lock = threading.Lock()
EVERY_INTERFACE = {"0.0.0.0", "::", "[::]", ""}


def reachable_host(listen_host: str) -> str:
    """A host students can reach: the listen address, or this machine's LAN address for 0.0.0.0."""
    if listen_host.strip() not in EVERY_INTERFACE:
        return listen_host
    try:
        # Connecting a UDP socket sends nothing; it only picks the interface of the default route.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostname()


def server_origin() -> str:
    host = reachable_host(settings.FLOWS_LISTEN_HOST)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.FLOWS_LISTEN_PORT}"


def instructor_link(origin: str, token: str) -> str:
    return f"{origin}/classroom/?token={token}"


def reachability_hint(origin: str) -> str:
    """What to set when students' browsers at ``origin`` would be refused (Host or Origin checks)."""
    host = urlsplit(origin).hostname or ""
    host_ok = validate_host(host, settings.ALLOWED_HOSTS)
    if host_ok and origins.is_allowed(origin):
        return ""
    key = " SECRET_KEY=<a long random value>" if settings.SECRET_KEY in PUBLIC_SECRET_KEYS else ""
    return (f"    Students' browsers at {origin} would be refused: restart with\n"
            f"    ALLOWED_HOSTS={host} FLOWS_ALLOWED_ORIGINS={origin}{key}\n")


def redact(text: str) -> str:
    return TOKEN_IN_QUERY.sub(r"\1…", text)


def redact_access_log() -> None:
    """Daphne's access log writes each request's URL, query included: not the instructor's token.

    Patched here because the log line is written by daphne, outside anything the app serves.
    """
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # pragma: no cover - served by another ASGI server
        return
    original = AccessLogGenerator.write_entry
    if getattr(original, "redacts_tokens", False):
        return

    @wraps(original)
    def write_entry(self: AccessLogGenerator, host: str, date: object, request: str, *args: object,
                    **kwargs: object) -> None:
        original(self, host, date, redact(request), *args, **kwargs)

    write_entry.redacts_tokens = True  # type: ignore[attr-defined]
    AccessLogGenerator.write_entry = write_entry


def announce(stream: TextIO | None = None) -> bool:
    """Print the instructor link if a token applies, at most once per process; True if printed now."""
    global _announced
    token = auth.current_token()
    with _lock:
        if token is None or _announced:
            return False
        _announced = True
    origin = server_origin()
    how = "made up for this server, which listens beyond loopback" if auth.token_was_generated() \
        else "from FLOWS_CLASSROOM_TOKEN"
    print(f"\n*** Classroom mode: only the instructor may start runs, act on them and open rooms.\n"
          f"    Instructor link (token {how}; keep it to yourself):\n"
          f"    {instructor_link(origin, token)}\n{reachability_hint(origin)}", file=stream or sys.stderr, flush=True)
    return True
