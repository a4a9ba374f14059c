"""The JSON API (docs/contracts.md, "HTTP API"). Bad input is a 4xx with a message, never a 500."""

from __future__ import annotations

import asyncio
import time
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.request import RawPostDataException
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from . import eventstore, export, lessons, registry, run_query, safejson, transports
from .context import Outcome
from .models import Run
from .run_relay import Relayed, runs_elsewhere
from .runner import CANCEL_ACTION, ActionRefused, RunnerError, get_runner

MAX_EVENTS_PAGE = 5000
MAX_BODY = 64 * 1024
# How long an action request waits for the run thread to handle it before answering "queued".
ACTION_ANSWER_S = 5.0
ACTION_POLL_S = 0.02
# An error body names at most this many problems, each in at most this many characters:
# 5,000 unknown parameters must not answer with 400 KB of the same sentence.
MAX_ERRORS = 20
MAX_ERROR_TEXT = 300


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def error(status: int, errors: dict[str, str]) -> JsonResponse:
    return JsonResponse(error_body(errors), status=status)


def error_body(errors: dict[str, str]) -> dict[str, dict[str, str]]:
    shown = {_clip(str(k)): _clip(str(v)) for k, v in list(errors.items())[:MAX_ERRORS]}
    if len(errors) > MAX_ERRORS:
        shown["more"] = f"{len(errors) - MAX_ERRORS} more problems not shown (of {len(errors)})"
    return {"errors": shown}


def is_json_content_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def body_problem(request: HttpRequest) -> JsonResponse | None:
    """413 or 415 for a body this API will not read, judged from the headers alone.

    Also run by ``dashboard.middleware.ApiRequestGuard`` before CSRF reads a form body,
    which would raise (``RequestDataTooBig``) or consume the stream (multipart).
    """
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return error(400, {"body": "Content-Length must be an integer"})
    if declared > MAX_BODY:
        return error(413, {"body": f"request body of {declared} bytes is over the limit of {MAX_BODY} bytes"})
    chunked = "CONTENT_LENGTH" not in request.META and "HTTP_TRANSFER_ENCODING" in request.META
    if (declared or chunked) and not is_json_content_type(request.content_type or ""):
        return error(415, {"content_type": f"send the body as JSON with Content-Type: application/json, "
                                           f"not {request.content_type or 'no content type'}"})
    return None


def json_body(request: HttpRequest) -> tuple[Any, JsonResponse | None]:
    problem = body_problem(request)
    if problem:
        return None, problem
    try:
        raw = request.body
    except RequestDataTooBig:
        return None, error(413, {"body": f"request body over {MAX_BODY} bytes"})
    except RawPostDataException:
        return None, error(415, {"content_type": "send the body as JSON with Content-Type: application/json"})
    if len(raw) > MAX_BODY:
        return None, error(413, {"body": f"request body over {MAX_BODY} bytes"})
    try:
        return safejson.loads(raw or b"{}"), None
    except safejson.JsonInputError as exc:
        return None, error(400, {"body": str(exc)})


def with_run(view):  # decorator
    @wraps(view)
    def wrapper(request: HttpRequest, run_id: int, *args: Any, **kwargs: Any) -> JsonResponse:
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return error(404, {"run": f"no run with id {run_id}"})
        return view(request, run, *args, **kwargs)

    return wrapper


def run_links(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "url": reverse("run-detail", args=[run.pk]),
        "page": reverse("run-page", args=[run.pk]),
        "ws": f"/ws/runs/{run.pk}/",
        "state": run.state,
    }


@ensure_csrf_cookie
@require_http_methods(["GET"])
def workflows(request: HttpRequest) -> JsonResponse:
    return JsonResponse([cls.contract() for cls in registry.all_workflows()], safe=False)


@require_http_methods(["GET"])
def lessons_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse(lessons.all_lessons(), safe=False)


@require_http_methods(["GET", "POST"])
def runs(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        try:
            limit = min(max(int(request.GET.get("limit", 50)), 1), 500)
        except ValueError:
            return error(400, {"limit": "must be an integer"})
        filters, errors = run_query.parse(request.GET)
        if errors:
            return error(400, errors)
        listed = []
        for run in run_query.apply(Run.objects.all(), filters)[:limit]:
            listed.append({
                **run_links(run),
                "workflow": run.workflow,
                "params": run.params,
                "created_at": run.created_at.isoformat(),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "error": run.error,
                "counts": (run.summary or {}).get("counts"),
            })
        return JsonResponse({"runs": listed})

    body, problem = json_body(request)
    if problem:
        return problem
    if not isinstance(body, dict):
        return error(400, {"body": "must be a JSON object like {\"workflow\": slug, \"params\": {...}}"})
    slug = body.get("workflow")
    if not isinstance(slug, str) or slug not in registry.WORKFLOWS:
        known = ", ".join(registry.WORKFLOWS)
        return error(400, {"workflow": f"unknown workflow {slug!r}; known: {known}"})
    unknown_keys = set(body) - {"workflow", "params"}
    if unknown_keys:
        return error(400, {k: "unknown field; send workflow and params" for k in sorted(unknown_keys)})
    params, errors = registry.get(slug).validate(body.get("params"))
    if errors:
        return error(400, errors)
    try:
        run = get_runner().start(slug, params)
    except RunnerError as exc:
        return error(exc.status, {"run": str(exc)})
    return JsonResponse(run_links(run), status=201)


@require_http_methods(["GET"])
@with_run
def run_detail(request: HttpRequest, run: Run) -> JsonResponse:
    return JsonResponse(get_runner().summary(run.pk))


@require_http_methods(["GET"])
@with_run
def run_events(request: HttpRequest, run: Run) -> JsonResponse:
    errors = {}
    values = {}
    for name, default, low, high in (("after", 0, 0, safejson.MAX_SAFE_INT), ("limit", 1000, 1, MAX_EVENTS_PAGE)):
        raw = request.GET.get(name, default)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            errors[name] = f"must be an integer, got {raw!r}"
            continue
        if not low <= value <= high:
            errors[name] = f"must be between {low} and {high}"
        values[name] = value
    if errors:
        return error(400, errors)
    events = eventstore.read_events(run.pk, values["after"], values["limit"])
    return JsonResponse({"events": events, "next": events[-1]["seq"] if events else values["after"]})


@require_http_methods(["GET"])
@with_run
def run_result(request: HttpRequest, run: Run) -> JsonResponse:
    """The workflow's whole result; the summary carries a copy bounded to fit a WebSocket frame."""
    return JsonResponse({"id": run.pk, "state": run.state, "result": run.result})


@require_http_methods(["GET"])
@with_run
def run_summary_download(request: HttpRequest, run: Run) -> JsonResponse:
    """The run summary of ``GET /api/runs/<id>/``, as a file to keep."""
    response = JsonResponse(get_runner().summary(run.pk), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-summary.json"'
    return response


def _events_download(run: Run, kind: str, content_type: str, lines, head: str = "") -> StreamingHttpResponse:
    response = StreamingHttpResponse(export.stream(run.pk, lines, head), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-events.{kind}"'
    return response


@require_http_methods(["GET"])
@with_run
def run_events_ndjson(request: HttpRequest, run: Run) -> StreamingHttpResponse:
    return _events_download(run, "ndjson", "application/x-ndjson; charset=utf-8", export.ndjson_lines)


@require_http_methods(["GET"])
@with_run
def run_events_csv(request: HttpRequest, run: Run) -> StreamingHttpResponse:
    return _events_download(run, "csv", "text/csv; charset=utf-8", export.csv_lines, export.csv_header())


@require_http_methods(["GET", "POST"])
async def run_actions(request: HttpRequest, run_id: int) -> JsonResponse:
    """GET: what each action applies to now. POST: act, and answer with what happened.

    Async so that waiting for the run thread to handle the action holds no worker thread.
    """
    if request.method == "GET":
        sent = await sync_to_async(_action_menu)(request, run_id)
    else:
        sent = await sync_to_async(_send_action)(request, run_id)
    if isinstance(sent, Relayed):  # the run executes in another web process
        status, body = await sent.ask()
        return JsonResponse(body, status=status)
    if isinstance(sent, JsonResponse):
        return sent
    name, target, outcome = sent
    deadline = time.monotonic() + ACTION_ANSWER_S
    while not outcome.done.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(ACTION_POLL_S)
    return JsonResponse(_acted(name, target, outcome), status=202)


def _acted(name: str, target: str, outcome: Outcome) -> dict[str, Any]:
    said = outcome.text if outcome.done.is_set() else (
        f"queued: the run has not handled {name} yet; it will at its next step")
    return {**outcome.extra, "accepted": True, "action": name, "target": target, "result": said}


def _menu(run_id: int) -> tuple[int, dict[str, Any]]:
    try:
        return 200, {"actions": get_runner().action_menu(run_id)}
    except RunnerError as exc:
        return exc.status, error_body({"run": str(exc)})


def _act(run_id: int, name: str, target: str, params: dict[str, Any]) -> Outcome | tuple[int, dict[str, Any]]:
    try:
        return get_runner().act(run_id, name, target, params)
    except ActionRefused as exc:
        return 400, error_body(exc.errors)
    except RunnerError as exc:
        return exc.status, error_body({exc.field: str(exc)})


def answer_relayed(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """In the process running the run: what another web process relayed (flows/run_relay.py)."""
    if request["what"] == "menu":
        return _menu(request["run"])
    acted = _act(request["run"], request["action"], request["target"], request["params"])
    if isinstance(acted, tuple):
        return acted
    acted.done.wait(ACTION_ANSWER_S)
    return 202, _acted(request["action"], request["target"], acted)


@with_run
def _action_menu(request: HttpRequest, run: Run) -> JsonResponse | Relayed:
    if not run.live:
        return error(409, {"run": f"run {run.pk} is {run.state}; actions apply to live runs only"})
    if runs_elsewhere(run.owner):
        return Relayed(run.owner, {"what": "menu", "run": run.pk}, ACTION_ANSWER_S)
    status, body = _menu(run.pk)
    return JsonResponse(body, status=status)


@with_run
def _send_action(request: HttpRequest, run: Run) -> JsonResponse | Relayed | tuple[str, str, Outcome]:
    body, problem = json_body(request)
    if problem:
        return problem
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        return error(400, {"action": "send {\"action\": name, \"target\": actor}"})
    target = body.get("target", "")
    if not isinstance(target, str) or len(target) > 200:
        return error(400, {"target": "must be a string naming an actor"})
    if not run.live:
        return error(409, {"run": f"run {run.pk} is {run.state}; actions apply to live runs only"})
    name = body["action"]
    params = body.get("params", {})
    if not isinstance(params, dict):
        return error(400, {"params": "must be a JSON object mapping the action's parameters to values"})
    # Cancel is run-level: whatever target came with it, none is echoed.
    target = "" if name == CANCEL_ACTION else target
    if runs_elsewhere(run.owner):
        return Relayed(run.owner, {"what": "act", "run": run.pk, "action": name, "target": target, "params": params},
                       ACTION_ANSWER_S)
    acted = _act(run.pk, name, target, params)
    if isinstance(acted, tuple):
        return JsonResponse(acted[1], status=acted[0])
    return name, target, acted


@require_http_methods(["GET"])
def health(request: HttpRequest) -> JsonResponse:
    brokers = transports.health(timeout=1.5)
    return JsonResponse({"ok": all(b["ok"] for b in brokers.values()), "brokers": brokers})


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return error(403, {"csrf": f"CSRF check failed ({reason}); send the csrftoken cookie's value as X-CSRFToken"})
