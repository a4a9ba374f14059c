"""HTTP middleware: foreign origins, API bodies this server will not read, and page headers."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse

from dashboard import origins
from flows.views import body_problem  # the API's own rule, in one place

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

Handler = Callable[[HttpRequest], HttpResponse]


class ForeignOriginMiddleware:
    """403 for a state-changing request whose ``Origin`` is not one of ``FLOWS_ALLOWED_ORIGINS``.

    Runs before Django's CSRF check, which would accept an Origin equal to the Host (see
    ``dashboard.origins``). Requests without an Origin (curl, API clients sending the CSRF
    token) are left to the CSRF check as before.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        origin = request.headers.get("Origin")
        if request.method not in SAFE_METHODS and origin is not None and not origins.is_allowed(origin):
            return JsonResponse({"errors": {"origin": (
                f"requests from {origin[:200]} are not allowed; the allowed origins are set by FLOWS_ALLOWED_ORIGINS"
            )}}, status=403)
        return self.get_response(request)


class ApiRequestGuard:
    """Answer 413/415 as JSON for an API body too large or not JSON, before anything reads it.

    Django's CSRF check reads a form body to look for its token: a body over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` would become an HTML "Bad Request" page, and a
    multipart one would be consumed before the view could tell the client what is wrong.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and request.method not in SAFE_METHODS:
            problem = body_problem(request)
            if problem is not None:
                return problem
        return self.get_response(request)


def content_security_policy(host: str | None) -> str:
    # 'unsafe-inline' styles: plotly and the page scripts set element styles at run time.
    sockets = f" ws://{host} wss://{host}" if host else ""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        f"connect-src 'self'{sockets}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class ContentSecurityPolicyMiddleware:
    """Every response says where scripts, styles, sockets and images may come from."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(self._host(request))
        return response

    @staticmethod
    def _host(request: HttpRequest) -> str | None:
        # get_host() is checked against ALLOWED_HOSTS and Django's host syntax (letters,
        # digits, dots, a port), so it cannot smuggle another directive into the header.
        try:
            return request.get_host()
        except DisallowedHost:
            return None
