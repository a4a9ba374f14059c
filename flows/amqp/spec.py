"""The ``amqp-routing`` parameters turned into an exchange, bindings and a message plan.

Empty ``bindings`` or ``keys`` take the example for the chosen exchange type; validation
writes the example into the run's parameters, so the run page (and history) always shows
the exact topology that ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..params import ParamError
from .routing_rules import EXCHANGE_TYPES, X_MATCH, Binding, binding_from, matching_bindings, queue_names

EXCHANGE = "orders"
MAX_BINDINGS = 12
MAX_QUEUES = 6
MAX_KEYS = 50
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
KEY_CHARS = re.compile(r"^[A-Za-z0-9_.*#-]{0,100}$")

PRESETS: dict[str, dict[str, list[Any]]] = {
    "direct": {
        "bindings": [
            {"queue": "billing", "key": "order.created"},
            {"queue": "shipping", "key": "order.paid"},
            {"queue": "audit", "key": "order.created"},
            {"queue": "audit", "key": "order.paid"},
        ],
        "keys": ["order.created", "order.paid", "order.cancelled"],
    },
    "topic": {
        "bindings": [
            {"queue": "billing", "key": "order.created.*"},
            {"queue": "shipping", "key": "order.paid.#"},
            {"queue": "eu", "key": "*.*.eu"},
            {"queue": "alerts", "key": "#.failed"},
        ],
        # order.paid shows # matching zero words; shipment.sent.us matches nothing.
        "keys": ["order.created.eu", "order.paid.us", "order.paid", "payment.failed", "invoice.sent.eu",
                 "shipment.sent.us"],
    },
    "fanout": {
        "bindings": [{"queue": "billing", "key": ""}, {"queue": "shipping", "key": ""}, {"queue": "audit", "key": ""}],
        "keys": ["order.created", "order.paid"],
    },
    "headers": {
        "bindings": [
            {"queue": "billing", "x_match": "all", "headers": {"type": "order", "region": "eu"}},
            {"queue": "shipping", "x_match": "any", "headers": {"type": "shipment", "priority": "high"}},
            {"queue": "audit", "x_match": "any", "headers": {"region": "us", "priority": "high"}},
        ],
        "keys": [{"type": "order", "region": "eu"}, {"type": "order", "region": "us"},
                 {"type": "shipment", "priority": "low"}, {"type": "invoice", "region": "asia"}],
    },
}


def check_list(value: Any) -> None:
    if not isinstance(value, list):
        raise ParamError("must be a JSON list")


def complete(params: dict[str, Any], exchange_types: Sequence[str]) -> dict[str, str]:
    """Fill in the example topology and check the whole against the exchange type; errors by field."""
    errors: dict[str, str] = {}
    etype = params["exchange_type"]
    if etype not in exchange_types:
        errors["exchange_type"] = (
            f"{etype} exchanges are not available on this broker (it routes {', '.join(exchange_types)}); "
            "kombu's in-process memory transport has no headers exchange: run with AMQP on RabbitMQ "
            "(AMQP_URL=amqp://…)")
    if not params["bindings"]:
        params["bindings"] = [dict(b) for b in PRESETS[etype]["bindings"]]
    if not params["keys"]:
        params["keys"] = list(PRESETS[etype]["keys"])
    problem = _bindings_problem(etype, params["bindings"])
    if problem:
        errors["bindings"] = problem
    problem = _keys_problem(etype, params["keys"])
    if problem:
        errors["keys"] = problem
    overrides = params.get("consumers_by_queue") or {}
    if not isinstance(overrides, dict):
        errors["consumers_by_queue"] = "must be a JSON object mapping a queue name to a number of consumers"
    elif "bindings" not in errors:
        known = {str(b["queue"]) for b in params["bindings"]}
        for name, n in overrides.items():
            if name not in known:
                errors["consumers_by_queue"] = f"{name!r} is not a bound queue (queues: {', '.join(sorted(known))})"
            elif not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 4:
                errors["consumers_by_queue"] = f"{name}: consumers must be an integer from 0 to 4"
    return errors


def _bindings_problem(etype: str, bindings: list[Any]) -> str:
    if len(bindings) > MAX_BINDINGS:
        return f"at most {MAX_BINDINGS} bindings"
    for i, b in enumerate(bindings, 1):
        if not isinstance(b, dict) or "queue" not in b:
            return f"binding {i} must be an object with a queue"
        if not isinstance(b["queue"], str) or not NAME.match(b["queue"]):
            return f"binding {i}: queue names are 1-40 letters, digits, '.', '_' or '-'"
        if etype == "headers":
            if set(b) - {"queue", "headers", "x_match"}:
                return f"binding {i}: a headers binding has queue, headers and x_match (all or any)"
            if b.get("x_match", "all") not in X_MATCH:
                return f"binding {i}: x_match must be all or any"
            if not isinstance(b.get("headers", {}), dict) or len(b.get("headers", {})) > 8:
                return f"binding {i}: headers must be an object of at most 8 name: value pairs"
        else:
            if set(b) - {"queue", "key"}:
                return f"binding {i}: a {etype} binding has queue and key"
            key = b.get("key", "")
            if not isinstance(key, str) or not KEY_CHARS.match(key):
                return f"binding {i}: keys are up to 100 letters, digits, '.', '_', '-', '*' or '#'"
    if len({b["queue"] for b in bindings}) > MAX_QUEUES:
        return f"at most {MAX_QUEUES} distinct queues"
    return ""


def _keys_problem(etype: str, keys: list[Any]) -> str:
    if len(keys) > MAX_KEYS:
        return f"at most {MAX_KEYS} message keys"
    for i, k in enumerate(keys, 1):
        if etype == "headers":
            if not isinstance(k, dict) or len(k) > 8:
                return f"message {i}: for a headers exchange each entry is an object of headers (at most 8)"
        elif not isinstance(k, str) or "*" in k or "#" in k or not KEY_CHARS.match(k):
            return f"message {i}: routing keys are strings of letters, digits, '.', '_' or '-' (no wildcards)"
    return ""


@dataclass(frozen=True)
class Message:
    index: int
    message_id: str
    routing_key: str
    headers: dict[str, str] | None
    bindings: tuple[Binding, ...]  # the bindings that match, in declaration order
    queues: tuple[str, ...]  # one copy each


class RoutingSpec:
    def __init__(self, params: Mapping[str, Any]) -> None:
        self.exchange_type: str = params["exchange_type"]
        self.exchange = EXCHANGE
        self.bindings = [binding_from(b) for b in params["bindings"]]
        self.keys = list(params["keys"])
        self.messages = int(params["messages"])
        overrides = params.get("consumers_by_queue") or {}
        self.consumers = {q: int(overrides.get(q, params["consumers"])) for q in queue_names(self.bindings)}

    @property
    def queues(self) -> list[str]:
        return list(self.consumers)

    def message(self, index: int) -> Message:
        entry = self.keys[index % len(self.keys)]
        if self.exchange_type == "headers":
            routing_key, headers = "", {str(k): str(v) for k, v in entry.items()}
        else:
            routing_key, headers = str(entry), None
        matched = tuple(matching_bindings(self.exchange_type, self.bindings, routing_key, headers))
        queues = tuple(dict.fromkeys(b.queue for b in matched))
        return Message(index, f"m{index + 1}", routing_key, headers, matched, queues)

    def plan(self) -> list[Message]:
        return [self.message(i) for i in range(self.messages)]

    def expected_deliveries(self) -> int:
        """Copies that reach a queue somebody consumes: what a run must see processed."""
        per_key = [sum(1 for q in self.message(i).queues if self.consumers[q] > 0) for i in range(len(self.keys))]
        full, rest = divmod(self.messages, len(self.keys))
        return full * sum(per_key) + sum(per_key[:rest])


__all__ = ["EXCHANGE", "EXCHANGE_TYPES", "PRESETS", "Message", "RoutingSpec", "check_list", "complete"]
