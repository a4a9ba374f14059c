"""A million-message result is built, looked up and stored without a copy per message too many.

The server's memory peaks when a big run ends: the result is built from the reader's lanes,
bounded for the summary and written to the database. Each test here fails if one of those
steps goes back to costing an object (or a parse node) per message.
"""

from __future__ import annotations

import tracemalloc

import pytest
from django.db import connection

from flows.models import Run
from flows.workflows.kafka_partitions import KafkaPartitions, KeyLane, SharedInts

from .test_frame_bounds import largest_kafka_partitions_result


def test_the_result_lists_share_one_int_per_value():
    lanes = {"a": KeyLane(), "b": KeyLane()}
    for n in range(1, 1001):
        lanes["a" if n % 2 else "b"].extend((n, 0, 500 + n))
    shared = SharedInts()
    columns = {key: lane.columns() for key, lane in lanes.items()}
    lists = {key: (shared.of(seqs), shared.of(offsets)) for key, (seqs, _parts, offsets) in columns.items()}
    # Same values as the lanes hold, in read order ...
    assert lists["a"][0] == list(range(1, 1001, 2)) and lists["a"][1] == [500 + n for n in range(1, 1001, 2)]
    # ... and a value met in two lists (a seq and an offset, of one key or of two) is one object.
    assert lists["a"][0][250] == lists["a"][1][0] == 501 and lists["a"][0][250] is lists["a"][1][0]
    assert lists["b"][1][0] == lists["b"][0][250] == 502 and lists["b"][1][0] is lists["b"][0][250]


def test_building_the_largest_result_costs_about_the_lists_themselves():
    tracemalloc.start()
    try:
        result = largest_kafka_partitions_result()
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    messages = KafkaPartitions.params["messages"].max
    assert sum(len(k["offsets"]) for k in result["keys"].values()) == messages
    # Two list slots (offset, seq) of 8 bytes each and the reader's 24-byte lane slot; an int
    # object per number (32 bytes each, twice) or a tuple per read would double this.
    assert peak / messages < 64, f"{peak / messages:.0f} bytes a message"


@pytest.mark.django_db
def test_a_run_is_looked_up_without_its_result_and_reads_it_on_demand():
    run = Run.objects.create(workflow="kafka-partitions", result={"keys": {"k": list(range(10))}})
    found = Run.objects.get(pk=run.pk)
    assert found.get_deferred_fields() == {"result"}
    assert found.result == {"keys": {"k": list(range(10))}}


@pytest.mark.django_db
def test_sqlite_stores_the_result_without_parsing_it_again():
    if connection.vendor != "sqlite":
        pytest.skip("the JSON_VALID check is SQLite's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [Run._meta.db_table])
        (schema,) = cursor.fetchone()
    assert 'JSON_VALID("result")' not in schema
    assert 'JSON_VALID("params")' in schema  # the other JSON columns keep Django's check
