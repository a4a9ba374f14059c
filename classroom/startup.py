"""The one line that shows the instructor token: printed once, when the server starts."""

from __future__ import annotations

import socket
import sys
import threading
from typing import TextIO

from django.conf import settings

from classroom import auth

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


def instructor_link(token: str) -> str:
    host = reachable_host(settings.FLOWS_LISTEN_HOST)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.FLOWS_LISTEN_PORT}/classroom/?token={token}"


def announce(stream: TextIO | None = None) -> bool:
    """Print the instructor link if a token applies, at most once per process; True if printed now."""
    global _announced
    token = auth.current_token()
    with _lock:
        if token is None or _announced:
            return False
        _announced = True
    how = "generated for this server (it listens beyond loopback)" if auth.token_was_generated() \
        else "from FLOWS_CLASSROOM_TOKEN"
    print(f"\n*** Classroom mode: only the instructor may start runs, act on them and open rooms.\n"
          f"    Instructor link (token {how}; keep it to yourself):\n"
          f"    {instructor_link(token)}\n", file=stream or sys.stderr, flush=True)
    return True
