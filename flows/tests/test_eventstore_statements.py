"""Batches of every size are stored with a handful of distinct INSERT statements.

Each database connection keeps its last 128 prepared statements, and a 500-row INSERT holds
about 0.3 MB of SQLite's memory: one statement per batch remainder made the pipeline's
long-lived connection grow by tens of MB over a soak of runs.
"""

from __future__ import annotations

import pytest

from flows import eventstore
from flows.models import Event, Run

BATCH_SIZES = [*range(1, 140), 499, 500, 501, 1234]


def test_insert_sizes_cover_the_rows_with_at_most_a_dozen_sizes() -> None:
    used: set[int] = set()
    for rows in range(0, 2001):
        sizes = list(eventstore.insert_sizes(rows, 500))
        assert sum(sizes) == rows
        used.update(sizes)
    assert used == {500, 256, 128, 64, 32, 16, 8, 4, 2, 1}


@pytest.mark.django_db
def test_storing_batches_of_many_sizes_reuses_the_same_statements() -> None:
    run = Run.objects.create(workflow="http-crud")
    eventstore._insert_sql.cache_clear()
    seq = 0
    for size in BATCH_SIZES:
        batch = [(seq + i + 1, float(seq + i), "publish", "producer", f"m{seq + i}", 1, False, {"n": i})
                 for i in range(size)]
        eventstore.write_batch(run.pk, batch)
        seq += size
    assert list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True)) == list(range(1, seq + 1))
    # One text per statement the connection prepares (PostgreSQL COPYs and never gets here).
    assert eventstore._insert_sql.cache_info().currsize <= 11
