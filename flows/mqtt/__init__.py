"""MQTT pieces shared by the ``mqtt-qos`` workflow, its tests and its benchmark."""
