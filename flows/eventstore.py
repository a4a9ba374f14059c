"""Storing and reading events in the database.

Writes go through one ``executemany`` per batch rather than the ORM: at tens of
thousands of events a second, building a model instance per event costs more than the
insert itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db import connection, transaction

from .models import Event
from .recorder import EventTuple

COLUMNS = "run_id, seq, t_ms, kind, actor, message_id, attempt, duplicate, attrs"


def _insert_sql() -> str:
    attrs = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    return f"INSERT INTO {Event._meta.db_table} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {attrs})"


def write_batch(run_id: int, batch: list[EventTuple]) -> None:
    dumps = json.dumps
    rows = [(run_id, e[0], e[1], e[2], e[3], e[4], e[5], e[6], dumps(e[7], separators=(",", ":"))) for e in batch]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_insert_sql(), rows)


def read_events(run_id: int, after: int = 0, limit: int = 1000) -> list[dict]:
    rows = (
        Event.objects.filter(run_id=run_id, seq__gt=after)
        .order_by("seq")
        .values_list("seq", "t_ms", "kind", "actor", "message_id", "attempt", "duplicate", "attrs")[:limit]
    )
    return [
        {"seq": s, "t_ms": t, "kind": k, "actor": a, "message_id": m, "attempt": n, "duplicate": d, "attrs": x}
        for s, t, k, a, m, n, d, x in rows
    ]


def iter_events(run_id: int, after: int = 0, chunk: int = 5000) -> Iterator[dict]:
    """All events after ``after`` in seq order, read in chunks to bound memory."""
    while True:
        batch = read_events(run_id, after, chunk)
        yield from batch
        if len(batch) < chunk:
            return
        after = batch[-1]["seq"]
