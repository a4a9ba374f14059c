"""MQTT topic filters and ``mqtt-qos`` parameters, without a broker."""

from __future__ import annotations

import itertools

import pytest

from flows import registry
from flows.mqtt.topic_match import matches
from flows.tests.test_mqtt_qos import filter_matches

FILTERS = ["#", "+", "a", "a/#", "a/+", "+/b", "a/+/c", "+/+/+", "a/b/#", "/#", "+/#", "a/+/#", "$SYS/#", "$SYS/+"]
TOPICS = ["a", "b", "a/b", "a/c", "b/b", "a/b/c", "a/x/c", "a/b/c/d", "/a", "a/", "", "$SYS/uptime", "$SYS", "x/b"]


@pytest.mark.parametrize(("topic_filter", "topic"), itertools.product(FILTERS, [t for t in TOPICS if t]))
def test_matcher_agrees_with_an_independent_reading_of_the_spec(topic_filter, topic):
    assert matches(topic_filter, topic) == filter_matches(topic_filter, topic)


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("sport/tennis/#", "sport/tennis", True),  # '#' includes the parent level [MQTT-4.7.1-2]
    ("sport/+", "sport/", True),  # '+' matches an empty level
    ("sport/+", "sport", False),
    ("+/+", "/finance", True),
    ("#", "$SYS/broker/uptime", False),  # [MQTT-4.7.2-1]
    ("$SYS/#", "$SYS/broker/uptime", True),
])
def test_examples_from_the_spec(topic_filter, topic, expected):
    assert matches(topic_filter, topic) is expected


def validate(**given):
    return registry.get("mqtt-qos").validate(given)


@pytest.mark.parametrize(("given", "field", "says"), [
    ({"subscribers": [{"name": "x", "filter": "a/#/b", "qos": 1}]}, "subscribers", "'#' must be the whole last level"),
    ({"subscribers": [{"name": "x", "filter": "a+", "qos": 1}]}, "subscribers", "'+' must be a whole level"),
    ({"subscribers": [{"name": "x", "filter": "a", "qos": 3}]}, "subscribers", "qos must be 0, 1 or 2"),
    ({"subscribers": [{"name": "x", "filter": "a", "qos": 0}, {"name": "x", "filter": "b", "qos": 0}]},
     "subscribers", "used twice"),
    ({"topics": ["a/+"]}, "topics", "must not contain the wildcards"),
    ({"topics": []}, "topics", "1 to 12"),
    ({"disconnect": "nobody"}, "disconnect", "no subscriber named 'nobody'"),
    ({"disconnect": "late"}, "disconnect", "late subscriber"),
    ({"qos": 3}, "qos", "must be one of 0, 1, 2"),
])
def test_bad_parameters_are_refused_with_a_reason(given, field, says):
    _, errors = validate(**given)
    assert field in errors and says in errors[field]


def test_defaults_are_valid_and_expect_what_mqtt_311_predicts():
    params, errors = validate()
    assert errors == {}
    from flows.mqtt.spec import predict

    prediction = predict(params)
    workflow = registry.get("mqtt-qos")()
    assert workflow.expected(params) == prediction.totals()["delivered"] > 0
    # The default lesson shows one of each: a DUP duplicate (s1, QoS 1), losses (s2, QoS 0),
    # a queue delivered on reconnect (s3, QoS 2, no duplicate) and retained copies (late).
    assert prediction.duplicates["s1"] and not prediction.duplicates["s3"]
    assert prediction.lost["s2"] and prediction.queued["s3"] and prediction.delivered["late"]
