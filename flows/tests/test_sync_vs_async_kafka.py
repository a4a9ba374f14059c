"""``sync-vs-async``'s Kafka lane on the embedded Tansu and on Tansu run as an external broker.

The contract (``SyncVsAsyncContract``) runs the issue's lessons through the real workflow;
every run is also held against the broker's own figures: the partition's end offset and the
group's committed offset (read by the lane at the end and again by the run's teardown,
just before it deleted the topic and the group), the consumer lag sampled during the run,
and, on the external broker, that nothing of the run is left behind.
"""

from __future__ import annotations

from typing import Any

import pytest

from flows.compare.lanes.kafka import GROUP_LABEL, KafkaLane

from .causes import duplicates_name_their_cause
from .sync_vs_async_support import SyncVsAsyncContract, in_window, lane_events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

TOPIC_ACTOR = "topic:orders/p0"


def check_kafka_against_the_broker(finished: Any) -> None:
    """What holds in every mode: the tally, the broker and the record tell the same story."""
    result = finished.result
    figures, orders = result["protocols"]["kafka"], result["orders"]
    broker = figures["broker"]
    # Every order the caller saw acknowledged is in the partition once, and the group committed past all of them.
    accepted = figures["placed"] - figures["errors"]
    assert broker["accepted"] == accepted == broker["end_offset"] == orders, broker
    assert broker["committed_offset"] == broker["end_offset"] and broker["lag"] == 0, broker
    # The teardown read the same figures from the broker before deleting the topic and the group.
    at_end = result["broker_at_end"]["kafka"]
    assert at_end["topic"] == broker["topic"] and at_end["deleted"] is True, at_end
    assert at_end["end_offsets"] == {"0": orders}
    assert at_end["committed"] == {broker["group"]: {"0": orders}}
    # The record agrees: each order routed to its own offset, the last commit is what the broker holds.
    routes = lane_events(finished, "kafka", "route")
    assert all(e["actor"] == TOPIC_ACTOR for e in routes)
    assert sorted(e["attrs"]["offset"] for e in routes) == list(range(orders))
    published = {e["message_id"]: e["attrs"]["offset"] for e in lane_events(finished, "kafka", "publish")}
    assert published == {e["message_id"]: e["attrs"]["offset"] for e in routes}
    commits = lane_events(finished, "kafka", "commit")
    assert len(commits) == orders  # one per order: a crashed handling commits nothing
    assert commits[-1]["attrs"]["offsets"] == {"0": orders}
    # The lag the sampler read from the broker: in the topic, in the lane's words, drained at the end.
    backlog = lane_events(finished, "kafka", "backlog")
    assert backlog and all(e["actor"] == TOPIC_ACTOR and e["attrs"]["source"] == KafkaLane.backlog_source
                           for e in backlog)
    assert backlog[-1]["attrs"]["depth"] == 0


def members(finished: Any) -> list[str]:
    """The group's members in the order they were assigned the partition."""
    return [e["actor"] for e in lane_events(finished, "kafka", "assign") if e["attrs"]["partitions"] == [0]]


class KafkaContract(SyncVsAsyncContract):
    protocols = ("kafka",)

    def check_common(self, finished: Any) -> None:
        super().check_common(finished)
        check_kafka_against_the_broker(finished)
        check = {"down": self.check_outage, "flaky": self.check_crashes}.get(finished.result["downstream"])
        if check is not None:
            check(finished)
        else:
            assert members(finished) == [f"group:{GROUP_LABEL}/member-1"]

    @staticmethod
    def check_outage(finished: Any) -> None:
        """The member left (committing first), the lag grew while nobody consumed, a new member read on."""
        window = finished.result["outage"]
        assert members(finished) == [f"group:{GROUP_LABEL}/member-1", f"group:{GROUP_LABEL}/member-2"]
        left = [e for e in lane_events(finished, "kafka", "revoke") if e["actor"].endswith("member-1")]
        assert left and left[0]["attrs"]["why"] == "left the group" and in_window(left[0], window), left
        backlog = lane_events(finished, "kafka", "backlog")
        assert any(e["attrs"]["depth"] > 0 and in_window(e, window) for e in backlog), (window, backlog)
        # member-2 started from member-1's last commit: nobody handled an order twice.
        assert finished.result["protocols"]["kafka"]["duplicates"] == 0

    @staticmethod
    def check_crashes(finished: Any) -> None:
        """Each crash ended its member; the next one re-read the crashed order from the committed offset."""
        crashes = lane_events(finished, "kafka", "crash")
        assert len(members(finished)) == len(crashes) + 1
        duplicates = duplicates_name_their_cause(finished.events, kinds=("crash",))
        assert {e["message_id"] for e in duplicates} == {e["message_id"] for e in crashes}
        by_seq = {e["seq"]: e for e in crashes}
        for delivery in duplicates:
            crash = by_seq[delivery["attrs"]["cause_seq"]]
            assert delivery["actor"] != crash["actor"] and delivery["attempt"] == 2
            assert "before its ack" in delivery["attrs"]["reason"]
            # The crashed member's revoke says why it gave the partition up.
            revoke = [e for e in lane_events(finished, "kafka", "revoke") if e["actor"] == crash["actor"]]
            assert revoke and revoke[0]["attrs"]["why"] == "member crashed"


class TestEmbeddedTansu(KafkaContract):
    @pytest.fixture(autouse=True)
    def embedded(self, broker_mode) -> None:
        broker_mode("kafka", "embedded")


class TestExternalTansu(KafkaContract):
    """Tansu as a broker the app did not start: what a run leaves behind must be gone afterwards."""

    @pytest.fixture(autouse=True)
    def external(self, broker_mode, tansu) -> None:
        self.bootstrap = tansu.bootstrap_servers
        broker_mode("kafka", "external", self.bootstrap)

    def check_common(self, finished: Any) -> None:
        from flows.kafka.clients import admin_client
        from flows.kafka.offsets import fetch_committed

        super().check_common(finished)
        broker = finished.result["protocols"]["kafka"]["broker"]
        admin = admin_client(self.bootstrap)
        assert broker["topic"] not in admin.list_topics(timeout=10).topics
        groups = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result(timeout=15).valid}
        assert broker["group"] not in groups
        assert fetch_committed(self.bootstrap, broker["group"], broker["topic"]) == {}
