"""What an ``mqtt-qos`` run is made of, and what MQTT 3.1.1 says its outcome must be.

``parse_subscribers`` / ``parse_topics`` validate the JSON parameters; ``predict`` plays
the run's plan (publish order, the automatic disconnect, reconnects, late subscribers)
through the rules of MQTT 3.1.1 so the view can put what the broker *did* beside what
the protocol *says*. Button actions during a live run are not part of the plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..params import ParamError
from .topic_match import TopicError, check_filter, check_topic, matches

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,12}$")
MAX_SUBSCRIBERS = 8
MAX_TOPICS = 12

DEFAULT_TOPICS = ["home/kitchen/temp", "home/kitchen/humidity", "home/garage/temp", "alerts/smoke"]
# s1 shows QoS 1 (a lost PUBACK → DUP duplicate), s2 QoS 0 (lost while away, even with a
# persistent session), s3 QoS 2 (no duplicate), late the retained messages.
DEFAULT_SUBSCRIBERS = [
    {"name": "s1", "filter": "home/+/temp", "qos": 1, "clean_session": False, "late": False},
    {"name": "s2", "filter": "home/#", "qos": 0, "clean_session": False, "late": False},
    {"name": "s3", "filter": "home/kitchen/+", "qos": 2, "clean_session": False, "late": False},
    {"name": "late", "filter": "#", "qos": 1, "clean_session": True, "late": True},
]


@dataclass(frozen=True)
class SubscriberSpec:
    name: str
    filter: str
    qos: int
    clean_session: bool = True
    # Subscribes only after the last message: it can only get retained messages.
    late: bool = False

    @property
    def actor(self) -> str:
        return f"subscriber:{self.name}"

    @property
    def persistent(self) -> bool:
        return not self.clean_session


def parse_subscribers(value: Any) -> list[dict[str, Any]]:
    """Param check for ``subscribers``: a list of {name, filter, qos, clean_session, late}."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SUBSCRIBERS:
        raise ParamError(f"must be a list of 1 to {MAX_SUBSCRIBERS} subscribers")
    cleaned, names = [], set()
    for index, item in enumerate(value, 1):
        if not isinstance(item, dict):
            raise ParamError(f"subscriber {index} must be an object with name, filter and qos")
        unknown = set(item) - {"name", "filter", "qos", "clean_session", "late"}
        if unknown:
            raise ParamError(f"subscriber {index}: unknown keys {', '.join(sorted(unknown))}")
        name = item.get("name", f"s{index}")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ParamError(f"subscriber {index}: name must be 1-12 letters, digits, - or _")
        if name in names:
            raise ParamError(f"subscriber name {name!r} is used twice")
        names.add(name)
        try:
            topic_filter = check_filter(item.get("filter", ""))
        except TopicError as exc:
            raise ParamError(f"subscriber {name}: {exc}") from None
        qos = item.get("qos", 0)
        if qos not in (0, 1, 2) or isinstance(qos, bool):
            raise ParamError(f"subscriber {name}: qos must be 0, 1 or 2")
        clean = item.get("clean_session", True)
        late = item.get("late", False)
        if not isinstance(clean, bool) or not isinstance(late, bool):
            raise ParamError(f"subscriber {name}: clean_session and late must be true or false")
        cleaned.append({"name": name, "filter": topic_filter, "qos": qos, "clean_session": clean, "late": late})
    return cleaned


def parse_topics(value: Any) -> list[str]:
    """Param check for ``topics``: the publisher cycles through these topic names."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TOPICS:
        raise ParamError(f"must be a list of 1 to {MAX_TOPICS} topic names")
    try:
        return [check_topic(topic) for topic in value]
    except TopicError as exc:
        raise ParamError(str(exc)) from None


def checked_topic(value: str) -> str:
    """Param check for a topic name a publisher uses (no wildcards)."""
    try:
        return check_topic(value)
    except TopicError as exc:
        raise ParamError(str(exc)) from None


def checked_filter(value: str) -> str:
    """Param check for a subscription filter (``+`` a whole level, ``#`` only the whole last one)."""
    try:
        return check_filter(value)
    except TopicError as exc:
        raise ParamError(str(exc)) from None


def checked_name(value: str) -> str:
    """Param check for a subscriber's name."""
    if not NAME_RE.match(value):
        raise ParamError("must be 1-12 letters, digits, - or _")
    return value


def subscribers_of(params: Mapping[str, Any]) -> list[SubscriberSpec]:
    return [SubscriberSpec(**item) for item in params["subscribers"]]


def topic_of(params: Mapping[str, Any], n: int) -> str:
    """Message ``n`` (from 1) goes to the topics in turn."""
    topics = params["topics"]
    return topics[(n - 1) % len(topics)]


def effective_qos(publish_qos: int, subscription_qos: int) -> int:
    """MQTT 3.1.1 §3.8.4: a message is delivered at the lower of the two."""
    return min(publish_qos, subscription_qos)


def route(connected: bool, persistent: bool, qos: int) -> str:
    """What the broker does with a matching message for one subscriber, by MQTT 3.1.1:
    deliver it now, queue it in the persistent session of an absent subscriber (QoS 1/2
    only), or drop it. The run (``route`` events) and ``predict`` both ask here."""
    if connected:
        return "deliver"
    if persistent and qos > 0:
        return "queue"
    return "drop"


def retained_for(topic_filter: str, retained: Mapping[str, int]) -> list[int]:
    """The retained messages (topic → latest message number) a SUBSCRIBE to ``topic_filter`` gets."""
    return [n for topic, n in sorted(retained.items(), key=lambda item: item[1]) if matches(topic_filter, topic)]


@dataclass
class Prediction:
    """Per subscriber: message numbers delivered at least once, again, and never."""

    delivered: dict[str, set[int]] = field(default_factory=dict)
    duplicates: dict[str, list[int]] = field(default_factory=dict)
    lost: dict[str, set[int]] = field(default_factory=dict)
    queued: dict[str, list[int]] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        return {
            "delivered": sum(len(v) for v in self.delivered.values()),
            "duplicates": sum(len(v) for v in self.duplicates.values()),
            "lost": sum(len(v) for v in self.lost.values()),
            "queued": sum(len(v) for v in self.queued.values()),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "delivered": {k: sorted(v) for k, v in self.delivered.items()},
            "duplicates": {k: sorted(v) for k, v in self.duplicates.items()},
            "lost": {k: sorted(v) for k, v in self.lost.items()},
            "queued": {k: list(v) for k, v in self.queued.items()},
        }


def leaving(params: Mapping[str, Any]) -> list[str]:
    return [name for name in (params.get("disconnect") or "").split(",") if name]


def disconnect_window(params: Mapping[str, Any]) -> tuple[int, int] | None:
    """(last message the leaving subscribers handle, last message published while they are away)."""
    at = params.get("disconnect_at") or 0
    if not leaving(params) or at <= 0 or at > params["messages"]:
        return None
    return at, min(at + params["away_messages"], params["messages"])


def predict(params: Mapping[str, Any]) -> Prediction:
    """The run's plan played through MQTT 3.1.1 rules, assuming nobody presses a button."""
    subs = subscribers_of(params)
    pub_qos, retain = params["qos"], params["retain"]
    window = disconnect_window(params)
    away = [s for s in subs if s.name in leaving(params)] if window else []
    out = Prediction()
    for s in subs:
        out.delivered[s.name], out.duplicates[s.name], out.lost[s.name], out.queued[s.name] = set(), [], set(), []
    retained: dict[str, int] = {}
    online = {s.name: not s.late for s in subs}
    unacked: dict[str, int] = {}  # subscriber → message it handled but never acknowledged

    def deliver(s: SubscriberSpec, n: int) -> None:
        if n in out.delivered[s.name]:
            out.duplicates[s.name].append(n)
        else:
            out.delivered[s.name].add(n)
            out.lost[s.name].discard(n)

    def subscribe(s: SubscriberSpec) -> None:
        # A SUBSCRIBE makes the broker send the retained message of every matching topic.
        for n in retained_for(s.filter, retained):
            deliver(s, n)

    def reconnect(s: SubscriberSpec) -> None:
        online[s.name] = True
        n = unacked.pop(s.name, None)
        if s.persistent:
            # The broker resends what it never saw acknowledged: QoS 1 as a PUBLISH with DUP
            # (the subscriber handles it again), QoS 2 only as a PUBREL (nothing handled twice).
            if n is not None and effective_qos(pub_qos, s.qos) == 1:
                deliver(s, n)
            for queued in out.queued[s.name]:
                deliver(s, queued)
        else:
            subscribe(s)

    for n in range(1, params["messages"] + 1):
        topic = topic_of(params, n)
        for s in subs:
            if s.late or not matches(s.filter, topic):
                continue
            outcome = route(online[s.name], s.persistent, effective_qos(pub_qos, s.qos))
            if outcome == "deliver":
                deliver(s, n)
            elif outcome == "queue":
                out.queued[s.name].append(n)
            else:
                out.lost[s.name].add(n)
        if retain:
            retained[topic] = n
        if window and n == window[0]:
            for s in away:
                online[s.name] = False
                if params["lose_ack"] and matches(s.filter, topic) and effective_qos(pub_qos, s.qos) > 0:
                    unacked[s.name] = n
        if window and n == window[1] and n < params["messages"]:
            for s in away:
                reconnect(s)
    for s in subs:
        if not s.late and not online[s.name]:
            reconnect(s)
    for s in subs:
        if s.late:
            subscribe(s)
    return out
