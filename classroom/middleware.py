"""HTTP middleware for classroom mode: only the instructor changes state; bursts are cut off.

Both do nothing when no classroom token applies (a laptop on loopback), so the dashboard
works there exactly as it did before classroom mode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from classroom import auth
from classroom.ratelimit import limiter
from flows.views import error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
ONLY_THE_INSTRUCTOR = (
    "only the instructor may start runs, act on them or open rooms on this server; ask them, "
    "or open the instructor link the server printed when it started"
)

Handler = Callable[[HttpRequest], HttpResponse]


class InstructorOnlyMiddleware:
    """403 JSON for a state-changing request that is not the instructor's, whatever its path.

    A request with the right Bearer token is exempt from the CSRF check: a browser never
    adds that header on its own, so a foreign page cannot forge it.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS and auth.current_token() is not None:
            if not auth.is_instructor(request):
                return error(403, {"auth": ONLY_THE_INSTRUCTOR})
            if auth.bearer(request.headers.get("Authorization", "")):
                request._dont_enforce_csrf_checks = True
        return self.get_response(request)


RUN_START = re.compile(r"^/api/runs/$")
RUN_ACTION = re.compile(r"^/api/runs/\d+/actions/$")


def _limits() -> list[tuple[str, re.Pattern[str], str, float, float, str]]:
    per_min = settings.FLOWS_RATE_RUNS_PER_MIN
    per_s = settings.FLOWS_RATE_ACTIONS_PER_S
    return [
        ("runs", RUN_START, "runs started", per_min / 60, per_min, f"{per_min:g} a minute"),
        ("actions", RUN_ACTION, "actions sent", per_s, per_s, f"{per_s:g} a second"),
    ]


def client_address(request: HttpRequest) -> str:
    # The socket's peer as daphne saw it; forwarded-for headers are the client's to invent.
    return request.META.get("REMOTE_ADDR") or "unknown"


class RateLimitMiddleware:
    """429 JSON when one client starts runs or sends actions faster than its bucket allows."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and auth.current_token() is not None:
            for name, pattern, what, rate, burst, said in _limits():
                if not pattern.match(request.path):
                    continue
                bucket = limiter(name, rate, burst)
                client = client_address(request)
                if not bucket.allow(client):
                    wait = math.ceil(bucket.retry_after(client))
                    response = error(429, {"rate": f"too many {what} from {client}: at most {said}; "
                                                   f"try again in {wait} s"})
                    response["Retry-After"] = str(wait)
                    return response
        return self.get_response(request)
