"""Start-up checks: the default SECRET_KEY and ALLOWED_HOSTS=* are for a laptop only.

Registered by ``DashboardConfig.ready``, so they run with ``manage.py check``, ``migrate``
and ``runflow``; ``dashboard.asgi`` runs them again when the server starts, where an
error stops it. Policy:

- default ``SECRET_KEY`` and the server listens beyond loopback (``FLOWS_LISTEN_HOST``,
  which ``make run`` sets from ``HOST``): an error with ``DEBUG`` off (the server refuses
  to start), a warning with ``DEBUG`` on;
- ``ALLOWED_HOSTS`` contains ``*``: a warning (any Host header is then accepted; Origin
  checks still hold, see ``dashboard.origins``).
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

DEFAULT_SECRET_KEY = "local-dev-only-not-secret-change-me"  # settings.py's
# Keys anyone can read in this repository: settings.py's default and docker-compose.yml's.
PUBLIC_SECRET_KEYS = {DEFAULT_SECRET_KEY, "change-me-for-anything-but-a-laptop"}
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name we cannot vouch for, or 0.0.0.0 / :: (every interface)


@register("security", deploy=False)
def check_public_defaults(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    listen = settings.FLOWS_LISTEN_HOST
    if settings.SECRET_KEY in PUBLIC_SECRET_KEYS and not is_loopback(listen):
        text = (f"the server listens on {listen}, beyond loopback, with a SECRET_KEY published in this "
                "repository: anyone can forge its signed values")
        hint = "set SECRET_KEY to a long random value, or listen on 127.0.0.1 (HOST=127.0.0.1)"
        if settings.DEBUG:
            messages.append(Warning(text, hint=hint, id="dashboard.W001"))
        else:
            messages.append(Error(text + "; refusing to start", hint=hint, id="dashboard.E001"))
    if "*" in settings.ALLOWED_HOSTS:
        messages.append(Warning(
            "ALLOWED_HOSTS=* accepts any Host header: pages and API answers are readable by any site "
            "that points its DNS name at this server",
            hint="list the host names this server is reached by, e.g. ALLOWED_HOSTS=dash.example.org",
            id="dashboard.W002",
        ))
    return messages


def enforce_at_startup() -> None:
    """Print every warning above; refuse to start (ImproperlyConfigured) on an error."""
    messages = check_public_defaults()
    for message in messages:
        print(f"\n*** {message.id}: {message.msg}\n    hint: {message.hint}\n", file=sys.stderr)
    errors = [m for m in messages if m.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(f"{m.id}: {m.msg} ({m.hint})" for m in errors))
