"""JSON from untrusted clients (API bodies, WebSocket frames), bounded in depth.

``json.loads`` recurses once per nesting level: 30,000 ``[`` raise ``RecursionError``, and
a value a few hundred levels deep parses but breaks whatever walks it next (``json.dumps``
of a parameter, orjson's 255-level limit when events are stored). No message in this
protocol nests deeper than a handful of levels, so anything past ``MAX_DEPTH`` is refused
with a sentence the client can act on.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
# The largest sequence number or id a client may send: the largest integer a browser's
# Number holds exactly, far beyond any run and well inside a 64-bit database column.
MAX_SAFE_INT = 2**53 - 1


class JsonInputError(ValueError):
    """A message for the client about why its JSON was refused."""


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data``; raise ``JsonInputError`` if it is malformed or nests deeper than ``max_depth``."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # includes UnicodeDecodeError and the 4300-digit integer limit
        raise JsonInputError(f"malformed JSON: {exc}") from None
    if depth(value, max_depth) > max_depth:
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels")
    return value


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0); stops counting past ``limit``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest
