"""Where the fallback broker, amqtt 0.12, breaks MQTT 3.1.1: said before a run starts.

The same departures the run page's "differs from MQTT 3.1.1" card reports after a run (see
``flows.workflows.mqtt_qos`` ``differences``), pinned by ``flows/tests/test_mqtt_qos.py``.
Mosquitto, used whenever its binary is installed, has none of them.
"""

from __future__ import annotations

AMQTT_CAVEATS: tuple[str, ...] = (
    "Deliveries at a QoS other than min(publish, subscription): amqtt delivers at the subscription's QoS, "
    "upgrading a QoS 0 or 1 publish (MQTT 3.1.1 §3.8.4).",
    "No DUP redelivery: a QoS 1 or 2 message whose acknowledgement was lost with the connection is dropped, "
    "not sent again with DUP=1, so the lost-PUBACK duplicate never shows (§4.4).",
    "Messages queued for an offline persistent session arrive marked RETAIN=1 (§3.3.1.3).",
    "Deliveries to subscribers whose filter does not match: on every CONNECT amqtt sends the retained messages "
    "matching any client's filters, so late and reconnecting subscribers get extra copies (§3.3.1.3).",
)
