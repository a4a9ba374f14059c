"""MQTT: Mosquitto at ``MQTT_URL`` (external) or an amqtt broker in this process (embedded)."""

from __future__ import annotations

from .base import Broker


class MqttBroker(Broker):
    protocol = "mqtt"
    embedded_name = "amqtt (in-process)"
    external_name = "Mosquitto"
    default_port = 1883
