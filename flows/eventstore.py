"""Storing and reading events in the database, and their JSON text.

Writes bypass the ORM: at tens of thousands of events a second, building a model instance
per event costs more than storing it. PostgreSQL gets one ``COPY`` per batch; SQLite
(and anything else) multi-row ``INSERT``s, one statement per few hundred rows rather than
``executemany``'s one step per row, which also lets SQLite drop and retake the GIL far
less often.

JSON goes through orjson: this runs for every event, and for small objects the stdlib
encoder's per-call overhead costs several times the encoding itself. Each event's attrs
are encoded once for the ``attrs`` column; the WebSocket text of a batch is one more call
over the whole batch. The stdlib encoder is the fallback for values orjson refuses (an
integer beyond 64 bits), and ``default=str`` keeps one odd value (a Decimal, bytes) from
making a batch unstorable, which would stall the run's pipeline forever.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import orjson
from django.db import connection, transaction

from .models import Event
from .recorder import EventTuple

COLUMNS = "run_id, seq, t_ms, kind, actor, message_id, attempt, duplicate, attrs"
WIDTH = len(COLUMNS.split(","))
ROWS_PER_INSERT = 500

_OPTIONS = orjson.OPT_NON_STR_KEYS
_stdlib_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
_quote = json.encoder.encode_basestring_ascii  # the escaping json.dumps applies to a str


def encode(value: Any) -> str:
    """Compact JSON text of ``value``; never raises for a value of an odd type."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits, a circular reference
        try:
            return _stdlib_encode(value)
        except (TypeError, ValueError):
            return _stdlib_encode(repr(value))


def encoded_size(value: Any) -> int:
    """Bytes of ``encode(value)`` in UTF-8, without the text: a big result's size check
    then holds one copy of its JSON rather than three (bytes, text, bytes again)."""
    try:
        return len(orjson.dumps(value, default=str, option=_OPTIONS))
    except TypeError:
        return len(encode(value).encode())


class Batch(list):
    """Event tuples with their attrs already encoded (``attrs_json``, same order)."""

    attrs_json: list[str]


def encode_batch(events: Sequence[EventTuple]) -> Batch:
    batch = Batch(events)
    batch.attrs_json = [encode(e[7]) for e in events]
    return batch


def write_batch(run_id: int, batch: Sequence[EventTuple]) -> None:
    attrs_json = getattr(batch, "attrs_json", None) or [encode(e[7]) for e in batch]
    rows = [(run_id, e[0], e[1], e[2], e[3], e[4], e[5], e[6], attrs) for e, attrs in zip(batch, attrs_json)]
    if not rows:
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _copy_rows(rows)
        else:
            _insert_rows(rows)


def _copy_rows(rows: list[tuple]) -> None:
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {Event._meta.db_table} ({COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert_rows(rows: list[tuple]) -> None:
    step = _rows_per_insert()
    if connection.vendor == "sqlite":
        # The driver's own cursor and placeholders: Django's cursor would rewrite each %s of
        # a statement of thousands of them with a regex, every time.
        cursor, marker = connection.connection.cursor(), "?"
    else:
        cursor, marker = connection.cursor(), "%s"
    try:
        start = 0
        for size in insert_sizes(len(rows), step):
            part = rows[start:start + size]
            start += size
            cursor.execute(_insert_sql(size, marker), [value for row in part for value in row])
    finally:
        cursor.close()


def insert_sizes(rows: int, step: int) -> Iterator[int]:
    """Row counts of the ``INSERT``s that store ``rows`` rows: ``step`` at a time, then the
    rest in powers of two, largest first.

    A statement sized to each batch's remainder would make up to ``step`` distinct statements,
    and each connection keeps its last 128 prepared (sqlite3's statement cache; a 500-row one
    holds about 0.3 MB of SQLite's memory): the pipeline's long-lived connection grew by
    tens of MB over a soak. Powers of two keep it to a dozen statements, always reused.
    """
    full, rest = divmod(rows, step)
    yield from [step] * full
    for bit in reversed(range(rest.bit_length())):
        if rest >> bit & 1:
            yield 1 << bit


def _rows_per_insert() -> int:
    limit = connection.features.max_query_params
    if connection.vendor == "sqlite":
        # Django assumes SQLite's old 999-variable default; ask the library itself.
        import sqlite3

        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(ROWS_PER_INSERT, (limit or 65535) // WIDTH))


@lru_cache(maxsize=64)
def _insert_sql(rows: int, marker: str) -> str:
    row = "(" + ", ".join([marker] * WIDTH) + ")"
    return f"INSERT INTO {Event._meta.db_table} ({COLUMNS}) VALUES " + ", ".join([row] * rows)


def batch_json(events: list[dict[str, Any]], batch: Sequence[EventTuple], attrs_json: Sequence[str]) -> str:
    """The JSON array the WebSocket sends for a batch (``events`` are its dicts)."""
    try:
        return orjson.dumps(events, default=str, option=_OPTIONS).decode()
    except TypeError:  # an attr orjson refuses: splice the attrs text already made for the database
        return events_json(batch, attrs_json)


def events_json(batch: Sequence[EventTuple], attrs_json: Sequence[str]) -> str:
    """The JSON array of ``batch`` as the WebSocket sends it, reusing the encoded attrs.

    Same keys, order and values as ``json.dumps([as_dict(e) ...])``, built by splicing
    because re-encoding every event's attrs would double the pipeline's JSON work. The
    common types are inlined (this loop runs for every event); anything else goes through
    the encoder.
    """
    return "[" + ",".join(event_parts(batch, attrs_json)) + "]"


def event_parts(batch: Sequence[EventTuple], attrs_json: Sequence[str]) -> list[str]:
    """Each event's JSON object text, as ``events_json`` joins them."""
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
    return parts


def _json_scalar(value: object) -> str:
    return _quote(value) if type(value) is str else encode(value)


def read_events(run_id: int, after: int = 0, limit: int = 1000) -> list[dict]:
    # seq is gapless, so the next ``limit`` events are exactly (after, after + limit]. The
    # upper bound keeps the query cheap even when the planner's statistics lag behind a
    # run being written (PostgreSQL would otherwise read and sort every later row).
    rows = (
        Event.objects.filter(run_id=run_id, seq__gt=after, seq__lte=after + limit)
        .order_by("seq")
        .values_list("seq", "t_ms", "kind", "actor", "message_id", "attempt", "duplicate", "attrs")[:limit]
    )
    return [
        {"seq": s, "t_ms": t, "kind": k, "actor": a, "message_id": m, "attempt": n, "duplicate": d, "attrs": x}
        for s, t, k, a, m, n, d, x in rows
    ]


def read_events_json(
    run_id: int, after: int = 0, limit: int = 1000, max_bytes: int | None = None
) -> tuple[str, int, int]:
    """Like ``read_events`` but already as the WebSocket's JSON array: ``(json, count, last_seq)``.

    Catching a client up from the database is then one query and one string build, with
    no decode and re-encode of every stored attrs object. With ``max_bytes`` only the
    leading events whose JSON fits are returned (always at least one), so ``count`` can
    be below ``limit`` while more are stored: page on until a read returns nothing.
    """
    attrs = "attrs::text" if connection.vendor == "postgresql" else "attrs"
    sql = (
        f"SELECT seq, t_ms, kind, actor, message_id, attempt, duplicate, {attrs} FROM {Event._meta.db_table} "
        "WHERE run_id = %s AND seq > %s AND seq <= %s ORDER BY seq"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id, after, after + limit])  # gapless seq: see read_events
        rows = cursor.fetchall()
    if not rows:
        return "[]", 0, after
    events = [(s, float(t), k, a, m, n, bool(d), None) for s, t, k, a, m, n, d, _ in rows]
    parts = event_parts(events, [row[7] for row in rows])
    if max_bytes is not None:
        size, keep = 2, 0  # the brackets
        for part in parts:
            size += (len(part) if part.isascii() else len(part.encode())) + 1
            if size > max_bytes and keep:
                break
            keep += 1
        parts = parts[:keep]
    return "[" + ",".join(parts) + "]", len(parts), rows[len(parts) - 1][0]


def iter_events(run_id: int, after: int = 0, chunk: int = 5000) -> Iterator[dict]:
    """All events after ``after`` in seq order, read in chunks to bound memory."""
    while True:
        batch = read_events(run_id, after, chunk)
        yield from batch
        if len(batch) < chunk:
            return
        after = batch[-1]["seq"]
