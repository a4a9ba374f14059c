"""The AMQP 0-9-1 routing rules, stated independently of any broker or client library.

A workflow uses this to say *which binding* matched (a broker only tells a consumer which
queue a message came from), and the tests check it against what RabbitMQ and the
embedded broker actually deliver, so a mistake here or there shows up as a disagreement.

* direct: the binding key equals the routing key;
* topic: keys are words separated by dots; ``*`` matches exactly one word, ``#`` zero or
  more words;
* fanout: every binding matches, the routing key is ignored;
* headers: the binding's arguments are compared with the message headers; ``x-match=all``
  needs every argument to be present with the same value, ``any`` at least one;
  arguments (and headers) whose name starts with ``x-`` take no part (RabbitMQ ≥ 3.10).

A queue bound twice by matching bindings receives one copy: ``queues_for`` is a set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

EXCHANGE_TYPES = ("direct", "topic", "fanout", "headers")
X_MATCH = ("all", "any")


@dataclass(frozen=True)
class Binding:
    queue: str
    key: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=())
    x_match: str = "all"

    def label(self, exchange_type: str) -> str:
        """How the binding is written on its edge in the topology."""
        if exchange_type == "fanout":
            return "(all)"
        if exchange_type == "headers":
            pairs = ", ".join(f"{k}={v}" for k, v in self.headers)
            return f"x-match={self.x_match}" + (f": {pairs}" if pairs else "")
        return self.key

    def arguments(self, exchange_type: str) -> dict[str, str] | None:
        """The queue.bind arguments a broker needs for this binding."""
        if exchange_type != "headers":
            return None
        return {"x-match": self.x_match, **dict(self.headers)}

    def as_param(self, exchange_type: str) -> dict[str, Any]:
        if exchange_type == "headers":
            return {"queue": self.queue, "x_match": self.x_match, "headers": dict(self.headers)}
        return {"queue": self.queue, "key": self.key}


def binding_from(spec: Mapping[str, Any]) -> Binding:
    headers = spec.get("headers") or {}
    return Binding(
        queue=str(spec["queue"]),
        key=str(spec.get("key", "")),
        headers=tuple(sorted((str(k), str(v)) for k, v in headers.items())),
        x_match=str(spec.get("x_match", "all")),
    )


@lru_cache(maxsize=4096)
def topic_matches(binding_key: str, routing_key: str) -> bool:
    """Word-by-word matching; ``#`` tries every split, so ``a.#.b`` matches ``a.b``."""
    return _words_match(_words(binding_key), _words(routing_key))


def _words(key: str) -> tuple[str, ...]:
    # RabbitMQ reads the empty key as no words at all (``*`` does not match it), but
    # ``a..b`` as three words, the middle one empty.
    return tuple(key.split(".")) if key else ()


def _words_match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _words_match(rest, words[1:])


def headers_match(binding: Binding, headers: Mapping[str, Any] | None) -> bool:
    given = {str(k): str(v) for k, v in (headers or {}).items()}
    wanted = [(k, v) for k, v in binding.headers if not k.startswith("x-")]
    hits = (given.get(k) == v for k, v in wanted)
    return any(hits) if binding.x_match == "any" else all(hits)


def matches(exchange_type: str, binding: Binding, routing_key: str, headers: Mapping[str, Any] | None = None) -> bool:
    if exchange_type == "direct":
        return binding.key == routing_key
    if exchange_type == "topic":
        return topic_matches(binding.key, routing_key)
    if exchange_type == "fanout":
        return True
    if exchange_type == "headers":
        return headers_match(binding, headers)
    raise ValueError(f"unknown exchange type {exchange_type!r}")


def matching_bindings(exchange_type: str, bindings: Iterable[Binding], routing_key: str,
                      headers: Mapping[str, Any] | None = None) -> list[Binding]:
    return [b for b in bindings if matches(exchange_type, b, routing_key, headers)]


def queues_for(exchange_type: str, bindings: Iterable[Binding], routing_key: str,
               headers: Mapping[str, Any] | None = None) -> list[str]:
    """The queues that receive one copy each, in binding order."""
    seen: dict[str, None] = {}
    for b in matching_bindings(exchange_type, bindings, routing_key, headers):
        seen.setdefault(b.queue, None)
    return list(seen)


def queue_names(bindings: Sequence[Binding]) -> list[str]:
    return list(dict.fromkeys(b.queue for b in bindings))
