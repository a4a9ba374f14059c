"""The MQTT lane of ``sync-vs-async``: the issue's contract on Mosquitto (embedded and the real
service), and what amqtt, the fallback broker, does instead.

Every run is cross-checked against the lane's own broker-side counts (PUBACKs, DUP flags,
sessions resumed) and, on the embedded brokers that nobody else uses, against the broker's
``$SYS`` count of messages it still holds for subscribers: none once the run is over.
"""

from __future__ import annotations

from typing import Any

import pytest

from .amqp_support import Finished
from .mqtt_support import use_embedded_amqtt, use_embedded_mosquitto
from .sync_vs_async_support import QUICK, SyncVsAsyncContract, lane_events, run_compare

pytestmark = pytest.mark.django_db(transaction=True)


def mqtt_counts(finished: Finished) -> dict[str, Any]:
    return finished.result["protocols"]["mqtt"]["broker"]


class MqttLaneChecks(SyncVsAsyncContract):
    protocols = ("mqtt",)
    impl = "mosquitto"

    def check_common(self, finished: Finished) -> None:
        super().check_common(finished)
        figures = finished.result["protocols"]["mqtt"]
        broker = mqtt_counts(finished)
        counted = broker["counted_by_lane"]
        assert broker["impl"] == self.impl
        delivers = lane_events(finished, "mqtt", "deliver")
        crashes = lane_events(finished, "mqtt", "crash")
        processed = lane_events(finished, "mqtt", "process")
        # Every PUBACK the caller waited for is an order the broker took; every handling that
        # did not crash sent its PUBACK; every DUP=1 copy is on the record.
        assert counted["pubacked"] == len(lane_events(finished, "mqtt", "publish")) == figures["placed"]
        assert counted["taken"] == len({e["message_id"] for e in delivers})
        assert counted["pubacks_sent"] == len(processed) - len(crashes)
        assert counted["dup_deliveries"] == sum(bool(e["attrs"].get("dup")) for e in delivers)
        assert counted["waiting"] == 0 and counted["foreign"] == 0
        # One persistent session for the whole run: every comeback found it.
        assert counted["session_lost"] == 0
        assert counted["connects"] == 1 + counted["session_resumed"]
        reconnects = [e for e in lane_events(finished, "mqtt", "assign") if e["attrs"]["action"] == "reconnect"]
        assert len(reconnects) == counted["session_resumed"]
        assert all(e["attrs"]["session_present"] for e in reconnects)
        held = broker["broker_held"]
        if held["exact"]:
            assert held["read"] and held["after"] == 0, held  # nothing left at the broker for anyone

    def test_perceived_is_the_puback_and_the_backlog_is_counted_not_read(self) -> None:
        finished = run_compare(self.protocols, downstream="up")
        figures = finished.result["protocols"]["mqtt"]
        publishes = lane_events(finished, "mqtt", "publish")
        assert all(e["attrs"]["ack"] == "PUBACK" and e["attrs"]["qos"] == 1 for e in publishes)
        assert "counted by the lane" in figures["backlog_source"]
        assert all(e["actor"] == "subscriber:mqtt" for e in lane_events(finished, "mqtt", "backlog"))


class TestMqttLaneEmbeddedMosquitto(MqttLaneChecks):
    @pytest.fixture(autouse=True)
    def mqtt_broker(self, broker_mode, monkeypatch):
        return use_embedded_mosquitto(broker_mode, monkeypatch)

    def test_flaky_duplicates_come_with_dup_set(self) -> None:
        finished = run_compare(self.protocols, downstream="flaky", flaky_rate=0.3)
        crashed = {e["message_id"]: e["seq"] for e in lane_events(finished, "mqtt", "crash")}
        again = [e for e in lane_events(finished, "mqtt", "deliver") if e["duplicate"]]
        # Mosquitto resent exactly what the crashed handlings never acknowledged, flagged DUP=1.
        assert {e["message_id"] for e in again} >= set(crashed)
        assert all(e["attrs"]["dup"] for e in again), again
        for event in again:
            if event["message_id"] in crashed:
                assert event["attrs"]["cause_seq"] == crashed[event["message_id"]]
                assert "crashed" in event["attrs"]["reason"]

    def test_down_the_broker_held_the_orders_while_the_subscriber_was_away(self) -> None:
        finished = run_compare(self.protocols, downstream="down", outage_ms=1500)
        figures = finished.result["protocols"]["mqtt"]
        broker = mqtt_counts(finished)
        assert broker["counted_by_lane"]["session_resumed"] == 1
        # The broker's own count saw orders waiting (it publishes $SYS once a second).
        assert broker["broker_held"]["peak"] >= 1, broker
        assert figures["backlog_max"] >= broker["broker_held"]["peak"] - 1, broker
        # Handled after the subscriber came back, so their end-to-end covers the outage.
        window = finished.result["outage"]
        late = [e for e in lane_events(finished, "mqtt", "process") if e["t_ms"] > window["end_ms"]]
        assert late and max(e["attrs"]["end_to_end_ms"] for e in late if "end_to_end_ms" in e["attrs"]) >= 1000


class TestMqttLaneMosquitto(MqttLaneChecks):
    """The real service every helper shares: its $SYS count includes others', so it is reported, not asserted."""

    @pytest.fixture(autouse=True)
    def mqtt_broker(self, broker_mode, mosquitto_url):
        return broker_mode("mqtt", "external", mosquitto_url)


class TestMqttLaneEmbeddedAmqtt(MqttLaneChecks):
    """amqtt forgets a QoS 1 message whose PUBACK had not come when the connection ended
    (``flows.mqtt.caveats``): the lane shows what that costs instead of the contract's lesson."""

    impl = "amqtt"

    @pytest.fixture(autouse=True)
    def mqtt_broker(self, broker_mode, monkeypatch):
        return use_embedded_amqtt(broker_mode, monkeypatch)

    def check_common(self, finished: Finished) -> None:
        super().check_common(finished)
        figures = finished.result["protocols"]["mqtt"]
        counted = mqtt_counts(finished)["counted_by_lane"]
        # What amqtt dropped is exactly what was lost, and the run said why instead of waiting for it.
        assert figures["lost"] == counted["pubacked"] - figures["completed"]
        assert counted["dropped_by_broker"] >= figures["lost"]
        if counted["dropped_by_broker"]:
            assert "amqtt drops" in mqtt_counts(finished)["caveats"][0]
            assert f"{figures['lost']} lost" in figures["verdict"]

    def test_down_sync_calls_fail_async_orders_wait_and_all_complete(self) -> None:
        finished = run_compare(self.protocols, downstream="down", outage_ms=800)
        self.check_common(finished)
        figures = finished.result["protocols"]["mqtt"]
        counted = mqtt_counts(finished)["counted_by_lane"]
        assert figures["errors"] == 0 and figures["backlog_max"] > 0, figures
        assert counted["session_resumed"] == 1
        # Queued for the absent session and sent on its return, marked RETAIN=1 (amqtt's quirk).
        marked = [e for e in lane_events(finished, "mqtt", "deliver") if e["attrs"].get("retain")]
        assert counted["retain_flag_deliveries"] == len(marked)
        assert all(e["t_ms"] >= finished.result["outage"]["end_ms"] - 50 for e in marked), marked
        # Those in flight to the subscriber when it left are gone: lost, never sent again.
        assert figures["completed"] + figures["lost"] == QUICK["orders"]

    def test_flaky_async_lanes_show_duplicates_with_reasons_sync_lanes_retry(self) -> None:
        # One crash: amqtt can hold on to a dropped connection for its 5 s PUBACK timeout, and
        # the subscriber waits for that before it comes back (``EmbeddedAmqtt.holds_connection``).
        finished = run_compare(self.protocols, downstream="flaky", flaky_rate=0.1)
        self.check_common(finished)
        figures = finished.result["protocols"]["mqtt"]
        crashed = {e["message_id"] for e in lane_events(finished, "mqtt", "crash")}
        assert crashed and figures["duplicates"] == 0, figures  # no DUP redelivery at all
        assert crashed <= {e["message_id"] for e in lane_events(finished, "mqtt", "process")}
        assert mqtt_counts(finished)["counted_by_lane"]["dropped_by_broker"] >= len(crashed)
