"""Typed, bounded workflow parameters.

A workflow declares its parameters once; the form, ``GET /api/workflows/`` and the
validation of ``POST /api/runs/`` are all derived from that declaration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import safejson


class ParamError(ValueError):
    """A message for the user about one parameter."""


@dataclass(frozen=True)
class Param:
    type: str  # int | float | bool | choice | multi | text | json
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    max_length: int = 2000
    # Extra checks beyond type and bounds (e.g. the shape of a JSON list); raise ParamError.
    check: Callable[[Any], Any] | None = field(default=None, compare=False)
    label: str = ""
    # A json param the form edits as rows (static/js/param-editor.js names the shapes), and
    # what an empty value stands for, per value of another param: {"by": name, "values": {…}}.
    editor: str = ""
    examples: Mapping[str, Any] | None = field(default=None, compare=False)
    item: str = ""  # what one of a multi param's choices is called, in its errors ("protocol")

    def contract(self) -> dict[str, Any]:
        contract = {
            "type": self.type,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices is not None else None,
            "help": self.help,
            "label": self.label,
        }
        if self.editor:
            contract["editor"] = self.editor
        if self.examples is not None:
            contract["examples"] = self.examples
        return contract

    def clean(self, value: Any) -> Any:
        cleaned = _CLEANERS[self.type](self, value)
        if self.check is not None:
            result = self.check(cleaned)
            if result is not None:
                cleaned = result
        return cleaned


def _bounded(param: Param, number: float) -> None:
    if param.min is not None and number < param.min:
        raise ParamError(f"must be at least {_fmt(param.min)}")
    if param.max is not None and number > param.max:
        raise ParamError(f"must be at most {_fmt(param.max)}")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _clean_int(param: Param, value: Any) -> int:
    if isinstance(value, bool):
        raise ParamError("must be an integer, not a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ParamError(f"must be an integer, got {value!r}") from None
    if not isinstance(value, int):
        raise ParamError(f"must be an integer, got {type(value).__name__}")
    _bounded(param, value)
    return value


def _clean_float(param: Param, value: Any) -> float:
    if isinstance(value, bool):
        raise ParamError("must be a number, not a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ParamError(f"must be a number, got {value!r}") from None
    if not isinstance(value, (int, float)):
        raise ParamError(f"must be a number, got {type(value).__name__}")
    try:
        number = float(value)  # an integer past ~1.8e308 has no float: OverflowError
    except OverflowError:
        raise ParamError("must be a finite number; this one is too large") from None
    if not math.isfinite(number):
        raise ParamError("must be a finite number")
    _bounded(param, number)
    return number


def _clean_bool(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "off", ""}:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ParamError(f"must be true or false, got {value!r}")


def _clean_choice(param: Param, value: Any) -> Any:
    choices = param.choices or ()
    for choice in choices:
        if value == choice or (isinstance(value, str) and str(choice) == value.strip()):
            return choice
    raise ParamError(f"must be one of {', '.join(map(str, choices))}; got {value!r}")


def _clean_multi(param: Param, value: Any) -> list[Any]:
    """Some of the choices, in the declared order, each once: a list, or a comma-separated string (forms, CLI)."""
    choices = param.choices or ()
    noun = param.item or "choice"
    if isinstance(value, str):
        value = [part for part in (piece.strip() for piece in value.split(",")) if part]
    if not isinstance(value, (list, tuple)):
        raise ParamError(f"must be a list of {', '.join(map(str, choices))}; got {type(value).__name__}")
    picked = set()
    for item in value:
        match = next((c for c in choices if item == c or (isinstance(item, str) and str(c) == item.strip())), None)
        if match is None:
            raise ParamError(f"unknown {noun} {item!r}; choose from {', '.join(map(str, choices))}")
        picked.add(match)
    if not picked:
        raise ParamError(f"choose at least one of {', '.join(map(str, choices))}")
    return [choice for choice in choices if choice in picked]


def _clean_text(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise ParamError("must be a string")
    if len(value) > param.max_length:
        raise ParamError(f"must be at most {param.max_length} characters")
    return value


def _clean_json(param: Param, value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > param.max_length:
            raise ParamError(f"must be at most {param.max_length} characters")
        try:
            value = safejson.loads(value)
        except safejson.JsonInputError as exc:
            raise ParamError(f"is not valid JSON: {exc}") from None
    elif safejson.depth(value) > safejson.MAX_DEPTH:
        raise ParamError(f"must not nest deeper than {safejson.MAX_DEPTH} levels")
    elif len(json.dumps(value)) > param.max_length:
        raise ParamError(f"must be at most {param.max_length} characters of JSON")
    return value


_CLEANERS: dict[str, Callable[[Param, Any], Any]] = {
    "int": _clean_int,
    "float": _clean_float,
    "bool": _clean_bool,
    "choice": _clean_choice,
    "multi": _clean_multi,
    "text": _clean_text,
    "json": _clean_json,
}


def validate(declared: Mapping[str, Param], given: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Clean ``given`` against ``declared``; return (params with defaults, errors by field)."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return {}, {"params": "must be a JSON object mapping parameter names to values"}
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            errors[name] = f"unknown parameter; known: {', '.join(sorted(declared))}"
    for name, param in declared.items():
        if name not in given:
            cleaned[name] = param.default
            continue
        try:
            cleaned[name] = param.clean(given[name])
        except ParamError as exc:
            errors[name] = str(exc)
    return cleaned, errors


# Shorthands used by workflow declarations.
def crash_within_messages(cleaned: dict[str, Any], errors: dict[str, str], unit: str = "messages") -> None:
    """Refuse a ``crash_at`` beyond the run's ``messages``: that crash would never come."""
    if not errors and cleaned["crash_at"] > cleaned["messages"]:
        errors["crash_at"] = (f"crash_at is {cleaned['crash_at']} but the run has {cleaned['messages']} {unit}: "
                              "at most messages (0 = never)")


def int_param(default: int, min: int, max: int, help: str, label: str = "") -> Param:
    return Param("int", default, help, min=min, max=max, label=label)


def float_param(default: float, min: float, max: float, help: str, label: str = "") -> Param:
    return Param("float", default, help, min=min, max=max, label=label)


def bool_param(default: bool, help: str, label: str = "") -> Param:
    return Param("bool", default, help, label=label)


def choice_param(default: Any, choices: tuple[Any, ...], help: str, label: str = "") -> Param:
    return Param("choice", default, help, choices=choices, label=label)


def multi_param(default: tuple[Any, ...], choices: tuple[Any, ...], help: str, label: str = "", item: str = "") -> Param:
    """Some of ``choices``: a list in the contract and in the run's params."""
    return Param("multi", list(default), help, choices=choices, label=label, item=item)
