"""Who is the instructor: the classroom token, and the two ways a request shows it.

A token applies when ``FLOWS_CLASSROOM_TOKEN`` is set, and always when the server listens
beyond loopback (``FLOWS_LISTEN_HOST``): then this process makes one up, once, and
``classroom.startup`` prints it with the instructor link. Without a token (a laptop on
loopback) everyone is the instructor, as before classroom mode existed.

The session keeps a fingerprint of the token, never the token: a session from an earlier
server (another generated token) stops counting, and a forged signed cookie cannot name
the instructor without knowing the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from dashboard.checks import is_loopback

SESSION_KEY = "classroom_instructor"
_generated: str | None = None
_lock = threading.Lock()


def token_applies(configured: str, listen_host: str) -> bool:
    """Whether state-changing requests need the instructor, for this configuration."""
    return bool(configured) or not is_loopback(listen_host)


def current_token() -> str | None:
    """The instructor token in force, or None when everyone may change state.

    A generated token lives as long as the process: the link printed at start keeps working.
    """
    global _generated
    configured = settings.FLOWS_CLASSROOM_TOKEN
    if configured:
        return configured
    if not token_applies(configured, settings.FLOWS_LISTEN_HOST):
        return None
    with _lock:
        if _generated is None:
            _generated = secrets.token_urlsafe(24)
        return _generated


def token_was_generated() -> bool:
    return not settings.FLOWS_CLASSROOM_TOKEN and current_token() is not None


def token_matches(given: str, token: str) -> bool:
    """Constant-time: how long the comparison takes says nothing about how much matched."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass"))


def fingerprint(token: str) -> str:
    return hashlib.sha256(b"flows-classroom-instructor:" + token.encode("utf-8", "surrogatepass")).hexdigest()


def bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def session_is_instructor(session: Mapping[str, Any] | None, token: str) -> bool:
    remembered = session.get(SESSION_KEY) if session is not None else None
    return isinstance(remembered, str) and token_matches(remembered, fingerprint(token))


def is_instructor(request: HttpRequest) -> bool:
    """True when no token applies, or the request carries it (Bearer) or the instructor session."""
    cached = getattr(request, "_classroom_instructor", None)
    if cached is not None:
        return cached
    token = current_token()
    if token is None:
        answer = True
    else:
        given = bearer(request.headers.get("Authorization", ""))
        answer = (given is not None and token_matches(given, token)) or session_is_instructor(
            getattr(request, "session", None), token)
    request._classroom_instructor = answer
    return answer


def remember_instructor(request: HttpRequest, token: str) -> None:
    request.session.cycle_key()
    request.session[SESSION_KEY] = fingerprint(token)
