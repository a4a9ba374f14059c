"""Which runs a history listing shows: the filters of ``GET /api/runs/`` and the Runs page.

Counts are read from the summary frozen in ``Run.summary`` with JSON key lookups, which
Django turns into ``JSON_EXTRACT`` on SQLite and ``->`` on PostgreSQL, so a filter never
loads every run's summary into Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet

from . import registry
from .models import Run

FLAGS = {"duplicates": "summary__counts__duplicates__gt", "lost": "summary__counts__lost__gt"}
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def parse(query: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The filters in ``query`` (a request's GET), and a message per bad value."""
    filters: dict[str, Any] = {}
    errors: dict[str, str] = {}
    workflow = query.get("workflow", "")
    if workflow:
        if workflow in registry.WORKFLOWS:
            filters["workflow"] = workflow
        else:
            errors["workflow"] = f"unknown workflow {workflow!r}; known: {', '.join(registry.WORKFLOWS)}"
    state = query.get("state", "")
    if state:
        if state in Run.State.values:
            filters["state"] = state
        else:
            errors["state"] = f"unknown state {state!r}; known: {', '.join(Run.State.values)}"
    for name in FLAGS:
        raw = query.get(name, "").strip().lower()
        if raw in TRUE:
            filters[name] = True
        elif raw not in FALSE:
            errors[name] = f"must be 1 or 0, got {query.get(name)!r}"
    return filters, errors


def apply(runs: QuerySet[Run], filters: Mapping[str, Any]) -> QuerySet[Run]:
    """``runs`` narrowed to those matching every filter ``parse`` returned."""
    for name in ("workflow", "state"):
        if name in filters:
            runs = runs.filter(**{name: filters[name]})
    for name, lookup in FLAGS.items():
        if filters.get(name):
            runs = runs.filter(**{lookup: 0})
    return runs
