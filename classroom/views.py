"""Classroom pages and API: the instructor link, rooms, and the page a student joins."""

from __future__ import annotations

import secrets

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from classroom import auth, rooms
from dashboard.views import _base_context as base_context
from flows import safejson
from flows.views import error, json_body

STUDENT_KEY = "classroom_student"


@require_http_methods(["GET"])
def instructor_link(request: HttpRequest) -> HttpResponse:
    """``/classroom/?token=…``: remember the instructor in the session, then leave the token behind."""
    token = auth.current_token()
    if token is None:
        return HttpResponseRedirect("/")  # no token applies: everyone is the instructor already
    given = request.GET.get("token", "")
    if not auth.token_matches(given, token):
        return error(403, {"auth": "this is not the instructor link's token; copy the whole link the server "
                                   "printed when it started"})
    auth.remember_instructor(request, token)
    return HttpResponseRedirect("/")


def _room_answer(request: HttpRequest, room: rooms.Room, status: int = 200) -> JsonResponse:
    return JsonResponse({**rooms.state(room), "join_url": join_url(request, room.code)}, status=status)


def join_url(request: HttpRequest, code: str) -> str:
    return request.build_absolute_uri(reverse("join-page", args=[code]))


@require_http_methods(["POST"])
def rooms_api(request: HttpRequest) -> JsonResponse:
    """``POST /api/rooms/ {run?}`` → 201 ``{code, join_url, …}``: a room following that run."""
    body, problem = json_body(request)
    if problem:
        return problem
    if not isinstance(body, dict):
        return error(400, {"body": 'must be a JSON object like {"run": id}'})
    unknown = set(body) - {"run"}
    if unknown:
        return error(400, {k: "unknown field; send run (optional)" for k in sorted(unknown)})
    run = body.get("run")
    if run is not None:
        if isinstance(run, bool) or not isinstance(run, int) or not 1 <= run <= safejson.MAX_SAFE_INT:
            return error(400, {"run": "must be a run id (a positive integer)"})
        if not rooms.run_exists(run):
            return error(400, {"run": f"no run with id {run}"})
    return _room_answer(request, rooms.create_room(run), status=201)


@require_http_methods(["GET"])
def room_detail(request: HttpRequest, code: str) -> JsonResponse:
    room = rooms.find(code)
    if room is None:
        return error(404, {"room": f"no room with code {code[:20]}"})
    return _room_answer(request, room)


@ensure_csrf_cookie
@require_http_methods(["GET"])
def join_page(request: HttpRequest, code: str) -> HttpResponse:
    """What a student opens: the room's run, followed over ``/ws/rooms/<code>/``."""
    room = rooms.find(code)
    if room is None:
        raise Http404(f"no room {code}")
    if not isinstance(request.session.get(STUDENT_KEY), str):
        # Anonymous, per browser: one answer per question, however often the page reloads.
        request.session[STUDENT_KEY] = secrets.token_hex(16)
    boot = {
        "code": room.code,
        "run": room.run,
        "ws": f"/ws/rooms/{room.code}/",
        "room_url": reverse("room-detail", args=[room.code]),
        "join_url": join_url(request, room.code),
        "position": room.position(),
        # True for the instructor (and everyone without a token): the page may offer controls.
        "instructor": auth.is_instructor(request),
    }
    return render(request, "dashboard/join.html", {**base_context(), "room": room, "boot": boot})
