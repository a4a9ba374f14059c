"""Server-rendered pages; live behaviour comes from the static JS modules they load."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie

from flows import lessons, registry, run_query
from flows.models import Run
from flows.transports import describe_all

from .params_display import run_param_views, short_items

RUNS_PAGE_SIZE = 100
# What the broker bar calls each protocol's broker.
BROKER_LABELS = {"amqp": "AMQP / Celery", "kafka": "Kafka", "mqtt": "MQTT", "redis": "Live updates"}
# A lesson question's "{message}": filled from the run on the run page, an ellipsis before it.
PLACEHOLDER = re.compile(r"\{[\w.-]+\}")


def _base_context() -> dict:
    return {"brokers": {protocol: {**b, "label": BROKER_LABELS.get(protocol, protocol)}
                        for protocol, b in describe_all().items()}}


@ensure_csrf_cookie
def catalog(request: HttpRequest) -> HttpResponse:
    workflows = [cls.contract() for cls in registry.all_workflows()]
    groups = [
        ("Sync", "The caller waits for the whole processing.", [w for w in workflows if w["pattern"] == "sync"]),
        ("Async", "The caller returns once the broker has the message.", [w for w in workflows if w["pattern"] == "async"]),
        ("Compare", "Both side by side: the same work through sync and async protocols at once.",
         [w for w in workflows if w["pattern"] == "compare"]),
    ]
    return render(request, "dashboard/catalog.html", {**_base_context(), "groups": groups})


@ensure_csrf_cookie
def workflow_page(request: HttpRequest, slug: str) -> HttpResponse:
    if slug not in registry.WORKFLOWS:
        raise Http404(f"no workflow {slug}")
    workflow = registry.get(slug).contract()
    return render(request, "dashboard/workflow.html", {**_base_context(), "workflow": workflow})


def runs_page(request: HttpRequest) -> HttpResponse:
    # The same filters as GET /api/runs/; a bad value is said on the page and left out.
    filters, errors = run_query.parse(request.GET)
    contracts = {cls.slug: cls.contract() for cls in registry.all_workflows()}
    runs = run_query.apply(Run.objects.all(), filters)[:RUNS_PAGE_SIZE]
    rows = [(run, short_items(run.workflow, run.params, contracts.get(run.workflow, {}).get("params", {}))) for run in runs]
    return render(request, "dashboard/runs.html", {
        **_base_context(), "rows": rows, "filters": filters, "filter_errors": errors,
        "filtered": bool(filters), "workflows": contracts, "states": Run.State.values,
        "page_size": RUNS_PAGE_SIZE, "any_runs": bool(rows) or Run.objects.exists(),
    })


def lessons_page(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/lessons.html", {**_base_context(), "lessons": lessons.all_lessons()})


@ensure_csrf_cookie
def lesson_page(request: HttpRequest, slug: str) -> HttpResponse:
    lesson = lessons.get(slug)
    if lesson is None:
        raise Http404(f"no lesson {slug}")
    contracts = {cls.slug: cls.contract() for cls in registry.all_workflows()}
    steps = [{**step, "n": n, "title": contracts[step["workflow"]]["title"],
              "question_text": PLACEHOLDER.sub("…", (step.get("question") or {}).get("text", "")),
              "items": short_items(step["workflow"], step["params"], contracts[step["workflow"]]["params"])}
             for n, step in enumerate(lesson["steps"], 1)]
    return render(request, "dashboard/lesson.html", {**_base_context(), "lesson": lesson, "steps": steps})


def panel_module(slug: str) -> str | None:
    """The static path of a workflow's panel module, if a colleague has written one.

    The run page imports it by this path (``#panel[data-module]``, static/js/README.md).
    """
    path = f"js/panels/{slug}.js"
    return path if finders.find(path) else None


@ensure_csrf_cookie
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=run_id)
    workflow = registry.get(run.workflow).contract() if run.workflow in registry.WORKFLOWS else {}
    panel = panel_module(run.workflow)
    # Everything the page script needs before the first WebSocket message arrives.
    boot = {
        "run": {
            "id": run.pk,
            "workflow": run.workflow,
            "params": run.params,
            "state": run.state,
            "error": run.error,
            "expected": run.expected,
            "pattern": workflow.get("pattern", "async"),
        },
        "workflow": workflow,
        "has_panel": panel is not None,
    }
    context = {**_base_context(), "run": run, "workflow": workflow, "has_panel": panel is not None,
               "panel_module": panel, "boot": boot,
               "params": run_param_views(run.workflow, run.params, workflow.get("params", {}))}
    return render(request, "dashboard/run.html", context)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"errors": {"path": f"no API endpoint at {request.path}"}}, status=404)
    return render(request, "dashboard/not_found.html", {**_base_context(), "path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"errors": {"server": "internal error; see the server log"}}, status=500)
