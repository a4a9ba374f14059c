"""Storing and reading events in the database, and their one JSON encoding.

Writes are multi-row ``INSERT``s in raw SQL rather than the ORM: at tens of thousands of
events a second, building a model instance per event costs more than the insert itself,
and one statement per few hundred rows (instead of ``executemany``'s one step per row)
also lets SQLite hold the GIL far less often.

Each event's attrs are JSON-encoded once: the same text goes into the ``attrs`` column
and, spliced into the event object, onto the WebSocket (``events_json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import lru_cache

from django.db import connection, transaction

from .models import Event
from .recorder import EventTuple

COLUMNS = "run_id, seq, t_ms, kind, actor, message_id, attempt, duplicate, attrs"
ROWS_PER_INSERT = 500

# default=str: one odd attr value (a datetime, bytes) must not make a batch unstorable
# and stall the run's pipeline forever.
encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
_quote = json.encoder.encode_basestring_ascii  # the same escaping json.dumps applies to str


class Batch(list):
    """Event tuples with their attrs already encoded (``attrs_json``, same order)."""

    attrs_json: list[str]


def encode_batch(events: Sequence[EventTuple]) -> Batch:
    batch = Batch(events)
    batch.attrs_json = [encode(e[7]) for e in events]
    return batch


def write_batch(run_id: int, batch: Sequence[EventTuple]) -> None:
    attrs_json = getattr(batch, "attrs_json", None) or [encode(e[7]) for e in batch]
    params: list = []
    extend = params.extend
    for e, attrs in zip(batch, attrs_json):
        extend((run_id, e[0], e[1], e[2], e[3], e[4], e[5], e[6], attrs))
    width = len(COLUMNS.split(","))
    step = _rows_per_insert(width)
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(batch), step):
            rows = min(step, len(batch) - start)
            cursor.execute(_insert_sql(connection.vendor, rows), params[start * width:(start + rows) * width])


def _rows_per_insert(width: int) -> int:
    limit = connection.features.max_query_params
    if connection.vendor == "sqlite":
        # Django assumes SQLite's old 999-variable default; ask the library itself.
        import sqlite3

        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(ROWS_PER_INSERT, (limit or 65535) // width))


@lru_cache(maxsize=64)
def _insert_sql(vendor: str, rows: int) -> str:
    attrs = "%s::jsonb" if vendor == "postgresql" else "%s"
    row = f"(%s, %s, %s, %s, %s, %s, %s, %s, {attrs})"
    return f"INSERT INTO {Event._meta.db_table} ({COLUMNS}) VALUES " + ", ".join([row] * rows)


def events_json(batch: Sequence[EventTuple], attrs_json: Sequence[str]) -> str:
    """The JSON array of ``batch`` as the WebSocket sends it, reusing the encoded attrs.

    Same keys, order and values as ``json.dumps([as_dict(e) ...])``, built by splicing
    because re-encoding every event's attrs would double the pipeline's JSON work. The
    common types are inlined (this loop runs for every event); anything else goes through
    the encoder.
    """
    actors: dict[object, str] = {}
    parts = []
    append = parts.append
    quote = _quote
    for (seq, t_ms, kind, actor, message_id, attempt, duplicate, _), attrs in zip(batch, attrs_json):
        actor_json = actors.get(actor)
        if actor_json is None:
            actor_json = actors[actor] = _json_scalar(actor)
        append(
            f'{{"seq":{seq},"t_ms":{_json_scalar(t_ms) if type(t_ms) is not float else repr(t_ms)},"kind":{quote(kind)},'
            f'"actor":{actor_json},"message_id":{quote(message_id) if type(message_id) is str else _json_scalar(message_id)},'
            f'"attempt":{attempt if type(attempt) is int else _json_scalar(attempt)},'
            f'"duplicate":{"true" if duplicate is True else "false" if duplicate is False else _json_scalar(duplicate)},'
            f'"attrs":{attrs}}}'
        )
    return "[" + ",".join(parts) + "]"


def _json_scalar(value: object) -> str:
    return _quote(value) if type(value) is str else encode(value)


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


def read_events_json(run_id: int, after: int = 0, limit: int = 1000) -> tuple[str, int, int]:
    """Like ``read_events`` but already as the WebSocket's JSON array: ``(json, count, last_seq)``.

    Catching a client up from the database is then one query and one string build, with
    no decode and re-encode of every stored attrs object.
    """
    attrs = "attrs::text" if connection.vendor == "postgresql" else "attrs"
    sql = (
        f"SELECT seq, t_ms, kind, actor, message_id, attempt, duplicate, {attrs} FROM {Event._meta.db_table} "
        "WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id, after, limit])
        rows = cursor.fetchall()
    if not rows:
        return "[]", 0, after
    events = [(s, float(t), k, a, m, n, bool(d), None) for s, t, k, a, m, n, d, _ in rows]
    return events_json(events, [row[7] for row in rows]), len(rows), rows[-1][0]


def iter_events(run_id: int, after: int = 0, chunk: int = 5000) -> Iterator[dict]:
    """All events after ``after`` in seq order, read in chunks to bound memory."""
    while True:
        batch = read_events(run_id, after, chunk)
        yield from batch
        if len(batch) < chunk:
            return
        after = batch[-1]["seq"]
