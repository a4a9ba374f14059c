"""A run's parameters as people read them: the form's labels, ``name = value``, JSON made compact.

Bindings read as ``queue ← key`` rows, lists of objects as one ``k=v`` row per item, so two
runs that differ in one setting (QoS 2 and QoS 0) look different at a glance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flows import registry


@dataclass(frozen=True)
class ParamView:
    name: str
    label: str
    text: str  # one line; for a list or mapping, a count or its items joined
    rows: tuple[str, ...]  # one line per item of a JSON list or mapping
    is_default: bool


def label_of(name: str, declared: dict[str, Any]) -> str:
    """The label the workflow form shows (static/js/workflow-form.js ``labelFor``)."""
    label = (declared or {}).get("label")
    if label:
        return label
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def item_row(item: Any) -> str:
    """One element of a JSON list: a binding as ``queue ← key``, another object as ``name: k=v`` pairs."""
    if not isinstance(item, dict):
        return scalar(item)
    if "queue" in item and ("key" in item or "headers" in item):
        if "key" in item:
            routed_by = item["key"] if item["key"] != "" else '""'
        else:
            headers = ", ".join(f"{k}={scalar(v)}" for k, v in (item.get("headers") or {}).items())
            routed_by = f"{item.get('x_match', 'all')}: {headers or '—'}"
        return f"{item['queue']} ← {scalar(routed_by)}"
    named = f"{item['name']}: " if isinstance(item.get("name"), str) else ""
    return named + " ".join(f"{k}={scalar(v)}" for k, v in item.items() if not (named and k == "name"))


def rows_of(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return tuple(item_row(item) for item in value)
    if isinstance(value, dict):
        return tuple(f"{k}: {scalar(v)}" for k, v in value.items())
    return ()


def text_of(value: Any) -> str:
    if isinstance(value, list):
        if not value:
            return "none"
        rows = rows_of(value)
        return f"{len(rows)} rows" if rows else ", ".join(scalar(v) for v in value)
    if isinstance(value, dict):
        return "none" if not value else ", ".join(rows_of(value))
    return scalar(value)


def defaults_for(slug: str, params: dict[str, Any], declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What each parameter would be had it been left alone, the rest of ``params`` as given.

    An empty JSON default means "the example" (AMQP bindings, routing keys), which the
    workflow's validation fills in from the other parameters: a run that kept it is
    shown as default, not as changed.
    """
    defaults = {name: spec.get("default") for name, spec in declared.items()}
    filled_in = {name for name, value in defaults.items() if value in ([], {}) and declared[name].get("type") == "json"}
    if filled_in and slug in registry.WORKFLOWS:
        cleaned, errors = registry.get(slug).validate({**params, **{name: defaults[name] for name in filled_in}})
        if not errors:
            defaults.update({name: cleaned[name] for name in filled_in})
    return defaults


def param_views(params: dict[str, Any], declared: dict[str, dict[str, Any]],
                defaults: dict[str, Any] | None = None) -> list[ParamView]:
    """Every parameter of a run, in the workflow's declaration order (unknown ones last)."""
    if defaults is None:
        defaults = {name: spec.get("default") for name, spec in declared.items()}
    names = [n for n in declared if n in params] + [n for n in params if n not in declared]
    views = []
    for name in names:
        value = params[name]
        views.append(ParamView(name, label_of(name, declared.get(name) or {}), text_of(value), rows_of(value),
                               name in defaults and defaults[name] == value))
    return views


SHORT_VALUE = 32


def run_param_views(slug: str, params: dict[str, Any], declared: dict[str, dict[str, Any]]) -> list[ParamView]:
    params = params or {}
    return param_views(params, declared, defaults_for(slug, params, declared))


def short_items(slug: str, params: dict[str, Any], declared: dict[str, dict[str, Any]],
                width: int = SHORT_VALUE) -> list[tuple[str, bool]]:
    """For a history table: ``(name=value, is_default)`` per parameter, each value cut to ``width``."""
    return [(f"{v.name}={clip(v.text, width)}", v.is_default) for v in run_param_views(slug, params, declared)]


def short_text(slug: str, params: dict[str, Any], declared: dict[str, dict[str, Any]], width: int = SHORT_VALUE) -> str:
    """The same as one line."""
    return " · ".join(text for text, _ in short_items(slug, params, declared, width))


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
