"""What ``amqp-routing`` needs to be driven by hand: the action parameters, their checks
against the exchange type, and the run's bindings as they are now.

The checks run on web threads (``Workflow.check_action``) before anything reaches the run,
so a bad routing key or binding is a 400 naming the field; the bindings are read there
too, hence a copy-on-write tuple rather than a list the run thread changes in place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..params import Param, int_param
from .routing_rules import X_MATCH, Binding, binding_from
from .spec import KEY_CHARS

MAX_CONSUMERS_PER_QUEUE = 8
MAX_BINDINGS = 16
MAX_HEADERS = 8
SHORTSTR_BYTES = 255  # AMQP 0-9-1 short strings (routing keys) are at most 255 bytes

PUBLISH_PARAMS = {
    "routing_key": Param("text", "", "The message's routing key (at most 255 bytes); a headers exchange ignores it",
                         max_length=1024, label="Routing key"),
    "headers": Param("json", {}, 'Headers exchanges: the message headers, e.g. {"type": "order", "region": "eu"}',
                     label="Headers"),
    "body": Param("text", "", "What the message says (optional)", max_length=4096, label="Body"),
}
QUEUE_PARAM = Param("text", "", "One of the run's queues", max_length=100, label="Queue")
BIND_PARAMS = {
    "queue": QUEUE_PARAM,
    "binding_key": Param("text", "", "direct: the exact key; topic: a pattern (* one word, # zero or more)",
                         max_length=1024, label="Binding key"),
    "arguments": Param("json", {}, 'Headers exchanges: {"x-match": "all" or "any", name: value, …}',
                       label="Arguments"),
}
SLOW_PARAMS = {"delay_ms": int_param(500, 0, 5000, "Extra time the consumer spends on each message", label="Delay ms")}


def key_field(exchange_type: str) -> str:
    """The action param a binding is told apart by: its key, or a headers binding's arguments."""
    return "arguments" if exchange_type == "headers" else "binding_key"


def routing_key_problem(exchange_type: str, key: str) -> str:
    if len(key.encode()) > SHORTSTR_BYTES:
        return f"bad routing key: at most {SHORTSTR_BYTES} bytes (an AMQP short string); this one has {len(key.encode())}"
    if any(ord(c) < 32 for c in key):
        return "bad routing key: no control characters"
    if exchange_type == "topic" and ("*" in key or "#" in key):
        return "bad routing key: a routing key is literal; * and # only mean something in a binding key"
    return ""


def headers_problem(headers: Any) -> str:
    if not isinstance(headers, dict):
        return "must be a JSON object of name: value pairs"
    if len(headers) > MAX_HEADERS:
        return f"at most {MAX_HEADERS} headers"
    if any(isinstance(v, (dict, list)) for v in headers.values()):
        return "header values are strings or numbers, not objects or lists"
    return ""


def binding_of(exchange_type: str, params: Mapping[str, Any]) -> tuple[Binding | None, dict[str, str]]:
    """The binding a bind/unbind names, or what is wrong with it, by field."""
    if exchange_type == "headers":
        arguments = params.get("arguments") or {}
        problem = headers_problem(arguments)
        if problem:
            return None, {"arguments": problem}
        x_match = str(arguments.get("x-match", "all"))
        if x_match not in X_MATCH:
            return None, {"arguments": "x-match must be all or any"}
        headers = {k: v for k, v in arguments.items() if k != "x-match"}
        return binding_from({"queue": params["queue"], "x_match": x_match, "headers": headers}), {}
    key = params.get("binding_key", "")
    if len(key.encode()) > SHORTSTR_BYTES or not KEY_CHARS.match(key):
        return None, {"binding_key": "binding keys are up to 100 letters, digits, '.', '_', '-', '*' or '#'"}
    return Binding(queue=params["queue"], key=key), {}


class LiveBindings:
    """The exchange's bindings now, each with its position in the run's list of bindings
    ever made (the panel draws one edge per position; a removed one keeps its number)."""

    def __init__(self, bindings: Iterable[Binding]) -> None:
        self._index: dict[Binding, int] = {}
        count = 0
        for b in bindings:
            self._index.setdefault(b, count)
            count += 1
        self._next = count
        self._now: tuple[Binding, ...] = tuple(self._index)
        self._lock = threading.Lock()

    def now(self) -> tuple[Binding, ...]:
        return self._now

    def index_of(self, binding: Binding) -> int:
        return self._index[binding]

    def add(self, binding: Binding) -> int:
        with self._lock:
            index = self._index[binding] = self._next
            self._next += 1
            self._now = (*self._now, binding)
            return index

    def remove(self, binding: Binding) -> int:
        with self._lock:
            self._now = tuple(b for b in self._now if b != binding)
            return self._index.pop(binding)
