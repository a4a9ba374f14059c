"""A run's events as downloadable NDJSON and CSV, produced chunk by chunk.

The server is ASGI (daphne), where Django drains a *synchronous* streaming iterator into a
list before sending it: the exports are async iterators, each chunk read from the
database in a thread, so a run of a million events never sits in memory at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async

from . import eventstore

CHUNK = 2000
FIELDS = ("seq", "t_ms", "kind", "actor", "message_id", "attempt", "duplicate", "attrs")


async def event_chunks(run_id: int, chunk: int = CHUNK) -> AsyncIterator[list[dict[str, Any]]]:
    """The run's events in seq order, ``chunk`` at a time."""
    after = 0
    while True:
        events = await sync_to_async(eventstore.read_events)(run_id, after, chunk)
        if events:
            yield events
        if len(events) < chunk:
            return
        after = events[-1]["seq"]


def ndjson_lines(events: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line, keys in the order of ``GET /api/runs/<id>/events/``."""
    return "".join(eventstore.encode(event) + "\n" for event in events)


def csv_header() -> str:
    return _csv_rows([FIELDS])


def csv_lines(events: Iterable[dict[str, Any]]) -> str:
    """One row per event; booleans as ``true``/``false`` and ``attrs`` as compact JSON, as in the API."""
    return _csv_rows(
        (e["seq"], repr(float(e["t_ms"])), e["kind"], e["actor"], e["message_id"], e["attempt"],
         "true" if e["duplicate"] else "false", eventstore.encode(e["attrs"]))
        for e in events
    )


def _csv_rows(rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


async def stream(run_id: int, lines: Callable[[Iterable[dict[str, Any]]], str], head: str = "",
                 chunk: int = CHUNK) -> AsyncIterator[bytes]:
    if head:
        yield head.encode()
    async for events in event_chunks(run_id, chunk):
        yield lines(events).encode()
