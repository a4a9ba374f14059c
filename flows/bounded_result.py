"""A workflow's result cut down to a size that fits in every WebSocket frame.

A workflow returns whatever details teach its lesson, and some grow with the run: a
100,000-message ``kafka-partitions`` run lists every key's offsets (1.3 MB of JSON).
The summary travels in one WebSocket frame, and a server closes the connection on a
frame over its limit (daphne: 1 MiB), so the summary carries a bounded copy and the
whole result is served over HTTP (``GET /api/runs/<id>/result/``).

Bounding keeps the shape (a list stays a list, a map a map, with their first items) so
panels read the summary as before, and says what it cut: ``truncated`` maps each cut
collection's path (``keys.k1.offsets``) to its full length, and names the full result.
Caps shrink until the JSON fits ``MAX_BYTES``, so the bound holds whatever the shape.
"""

from __future__ import annotations

from typing import Any

from .eventstore import encoded_size

MAX_BYTES = 64 * 1024
# Items kept per list or map, tried in turn until the result fits.
ITEM_CAPS = (100, 25, 5, 1)
MAX_TEXT = 4000
# Paths listed in the ``truncated`` note; past that, only how many more there were.
MAX_NOTED = 50
NOTE = "truncated"


def bound_result(result: Any, full_url: str = "") -> Any:
    """``result`` if its JSON fits MAX_BYTES, else a bounded copy that says what it cut."""
    if not isinstance(result, dict) or not result:
        return result
    if encoded_size(result) <= MAX_BYTES:
        return result
    for cap in ITEM_CAPS:
        cut: dict[str, int] = {}
        bounded = _bound(result, cap, "", cut)
        bounded[NOTE] = _note(cut, cap, full_url)
        if encoded_size(bounded) <= MAX_BYTES:
            return bounded
    return {NOTE: _note({"": len(result)}, 0, full_url)}


def _note(cut: dict[str, int], cap: int, full_url: str) -> dict[str, Any]:
    noted = dict(list(cut.items())[:MAX_NOTED])
    note: dict[str, Any] = {"items_kept": cap, "totals": noted, "more": len(cut) - len(noted)}
    if full_url:
        note["full"] = full_url
    return note


def _bound(value: Any, cap: int, path: str, cut: dict[str, int]) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        if len(items) > cap and path:  # the top level is the workflow's own fields: all kept
            cut[path] = len(items)
            items = items[:cap]
        return {k: _bound(v, cap, f"{path}.{k}" if path else str(k), cut) for k, v in items}
    if isinstance(value, (list, tuple)):
        if len(value) > cap:
            cut[path] = len(value)
            value = value[:cap]
        return [_bound(v, cap, f"{path}.{i}", cut) for i, v in enumerate(value)]
    if isinstance(value, str) and len(value) > MAX_TEXT:
        cut[path] = len(value)
        return value[:MAX_TEXT]
    return value
