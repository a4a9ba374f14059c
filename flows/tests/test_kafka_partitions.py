"""``kafka-partitions`` on a real Kafka-protocol broker: key hashing, per-key order, offsets.

One contract class, run against an external broker (the session's Tansu at its URL) and
against the Tansu the app starts itself (embedded mode).
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from .kafka_support import java_murmur2, java_partition, kafka_mode, run_all

SLUG = "kafka-partitions"
SCENARIOS = {
    "acks_all": {"partitions": 6, "keys": 12, "messages": 60, "acks": "all"},
    "acks_1": {"partitions": 3, "keys": 5, "messages": 20, "acks": "1"},
    "acks_0": {"partitions": 4, "keys": 6, "messages": 24, "acks": "0"},
    "idempotent_32": {"partitions": 32, "keys": 40, "messages": 80, "acks": "all", "idempotent": True},
}
# Apache Kafka's UtilsTest.testMurmur2 vectors (clients/src/test/java/org/apache/kafka/common/
# utils/UtilsTest.java): what the Java client computes.
KAFKA_MURMUR2_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_the_tests_murmur2_is_kafkas() -> None:
    for data, expected in KAFKA_MURMUR2_VECTORS.items():
        assert java_murmur2(data) == expected


def test_the_products_murmur2_is_kafkas() -> None:
    """The partitioner the workflows explain placements with, against Kafka's own vectors."""
    from flows.kafka.partitioner import murmur2, partition_for

    for data, expected in KAFKA_MURMUR2_VECTORS.items():
        assert murmur2(data) == expected, data
        assert partition_for(data, 7) == (expected & 0x7FFFFFFF) % 7, data


def test_idempotent_producer_needs_acks_all() -> None:
    from flows import registry

    _, errors = registry.get(SLUG).validate({"idempotent": True, "acks": "1"})
    assert "acks" in errors
    _, errors = registry.get(SLUG).validate({"idempotent": True, "acks": "all"})
    assert errors == {}


@pytest.mark.django_db(transaction=True)
class PartitionsContract:
    mode = ""

    @pytest.fixture(scope="class")
    def runs(self, request, django_db_setup, django_db_blocker, tansu):
        url = tansu.bootstrap_servers if self.mode == "external" else None
        with django_db_blocker.unblock(), kafka_mode(self.mode, url) as bootstrap:
            scenarios = {name: {"rate": 0, **given} for name, given in SCENARIOS.items()}
            captured = run_all(SLUG, scenarios)
            yield bootstrap, captured

    def test_runs_succeed_and_count_every_message(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            assert run.state == "succeeded", (run.name, run.error)
            n = run.params["messages"]
            counts = run.summary["counts"]
            assert counts["published"] == n and counts["processed"] == n and counts["lost"] == 0, (run.name, counts)
            assert run.summary["progress"] == {"done": n, "expected": n}
            assert run.result["read"] == n

    def test_each_key_lands_where_java_murmur2_puts_it(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            partitions = run.params["partitions"]
            published = run.of("publish")
            assert len(published) == run.params["messages"]
            for event in published:
                key = event["attrs"]["key"].encode()
                assert event["attrs"]["partition"] == java_partition(key, partitions), (run.name, event)
            # The reader found each message in the lane its key hashes to, too.
            for event in run.of("deliver"):
                assert event["attrs"]["partition"] == java_partition(event["attrs"]["key"].encode(), partitions)
            for key, info in run.result["keys"].items():
                assert info["expected_partition"] == java_partition(key.encode(), partitions)
                assert info["partitions"] == [info["expected_partition"]]
            if partitions > 1:  # a partitioner that put everything in one lane would pass the rest
                assert len({e["attrs"]["partition"] for e in published}) > 1

    def test_per_key_order_is_kept_in_one_lane(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            sent_order = {e["message_id"]: int(e["message_id"].split("-")[1]) for e in run.of("publish")}
            by_key: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
            for event in run.of("deliver"):  # the reader reads each lane from offset 0
                a = event["attrs"]
                by_key[a["key"]].append((sent_order[event["message_id"]], a["partition"], a["offset"]))
            assert len(by_key) == run.params["keys"]
            for key, seen in by_key.items():
                assert len({p for _, p, _ in seen}) == 1, (run.name, key)
                assert [n for n, _, _ in seen] == sorted(n for n, _, _ in seen), (run.name, key, seen)
                assert [o for _, _, o in seen] == sorted(o for _, _, o in seen)
            assert run.result["per_key_order"] is True

    def test_offsets_are_dense_per_partition(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            lanes: dict[int, list[int]] = defaultdict(list)
            for event in run.of("deliver"):
                lanes[event["attrs"]["partition"]].append(event["attrs"]["offset"])
            for partition, offsets in lanes.items():
                assert sorted(offsets) == list(range(len(offsets))), (run.name, partition)

    def test_end_offsets_agree_with_the_broker(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            partitions = run.params["partitions"]
            # A fresh fetch's end offsets, read by the run's teardown just before it deleted the topic.
            at_end = run.result["broker_at_end"]["kafka"]
            assert at_end["topic"] == run.result["topic"] and at_end["deleted"] is True
            broker = {int(p): end for p, end in at_end["end_offsets"].items()}
            assert sorted(broker) == list(range(partitions))
            shown = {int(p): end for p, end in run.result["end_offsets"].items()}
            assert shown == broker, run.name
            counted = defaultdict(int)
            for event in run.of("deliver"):
                counted[event["attrs"]["partition"]] += 1
            assert {p: counted.get(p, 0) for p in range(partitions)} == broker
            if run.params["acks"] != "0":
                # Delivery reports gave the producer the same offsets.
                assert {int(p): e for p, e in run.result["produced_end_offsets"].items()} == {
                    p: e for p, e in broker.items() if e}

    def test_the_runs_topic_is_gone_afterwards(self, runs) -> None:
        from flows.kafka.clients import admin_client

        bootstrap, captured = runs
        listed = admin_client(bootstrap).list_topics(timeout=10).topics
        for run in captured.values():
            assert run.result["topic"] not in listed, run.name

    def test_acks_zero_gets_no_offset_back(self, runs) -> None:
        _, captured = runs
        run = captured["acks_0"]
        assert all(e["attrs"]["offset"] is None for e in run.of("publish"))
        assert all(e["attrs"]["offset"] is None for e in run.of("route", "topic:"))
        assert all(isinstance(e["attrs"]["offset"], int) for e in run.of("deliver"))
        for name in ("acks_all", "acks_1"):
            assert all(isinstance(e["attrs"]["offset"], int) for e in captured[name].of("publish"))

    def test_route_events_name_topic_lanes(self, runs) -> None:
        _, captured = runs
        run = captured["acks_all"]
        for event in run.of("route"):
            assert event["actor"] == f"topic:orders/p{event['attrs']['partition']}"
        perceived = run.summary["latency_ms"]["perceived"]
        assert perceived["count"] == run.params["messages"] and perceived["max"] > 0


class TestPartitionsExternal(PartitionsContract):
    mode = "external"


class TestPartitionsEmbedded(PartitionsContract):
    mode = "embedded"
