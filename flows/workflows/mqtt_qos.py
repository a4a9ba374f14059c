"""``mqtt-qos``: QoS 0/1/2, wildcard filters, retained messages and persistent sessions (lessons 5 and 7).

One publisher cycles through a few topics; several subscribers hold filters with ``+``
and ``#``. For every message the broker's *expected* routing (our MQTT 3.1.1 matcher) is
recorded as ``route`` events, and what each subscriber *actually* got as ``deliver`` /
``process`` events with the flags the broker set (QoS, DUP, RETAIN), so a broker that
differs from the protocol shows up as a difference.

A subscriber can leave mid-stream (parameter or button). With ``lose_ack`` it drops the
connection after handling a message but before its PUBACK/PUBCOMP went out: a persistent
QoS 1 session then gets that message again with DUP set (a duplicate), QoS 2 gets only a
PUBREL again (no duplicate), and QoS 0 (or a clean session) simply loses what was
published while it was away.
"""

from __future__ import annotations

import functools
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson

from ..ledger import Delivery
from ..mqtt.clients import Connection, wipe_session
from ..mqtt.ledger import Ledger, Published
from ..mqtt.spec import (
    DEFAULT_SUBSCRIBERS,
    DEFAULT_TOPICS,
    MAX_SUBSCRIBERS,
    SubscriberSpec,
    checked_filter,
    checked_name,
    checked_topic,
    disconnect_window,
    effective_qos,
    leaving,
    parse_subscribers,
    parse_topics,
    predict,
    retained_for,
    route,
    subscribers_of,
    topic_of,
)
from ..mqtt.topic_match import matches
from ..params import Param, bool_param, choice_param, float_param, int_param
from ..registry import Workflow, action
from ..transports import BrokerUnavailable

PUBLISHER = "publisher"
BROKER = "broker"
# A run is over when every expected delivery arrived, or nothing arrived for this long.
QUIET_S = 0.75
# After everything expected arrived, wait this much longer for late duplicates.
SETTLE_S = 0.2
# Why a copy with neither DUP nor RETAIN is a duplicate, if it turns out to be one.
DELIVERED_AGAIN = "delivered again (DUP=0) after the subscriber reconnected"
DRAIN_LIMIT_S = 15.0
ACK_WAIT_S = 10.0
# Bounds on what a run can grow to by hand.
MAX_FILTERS = 8  # subscriptions per subscriber
MAX_DELAY_MS = 5_000

PUBLISH_PARAMS = {
    "topic": Param("text", "home/kitchen/temp", "Topic name, levels separated by / (no wildcards + or #: "
                   "those belong in filters)", max_length=200, check=checked_topic, label="Topic"),
    "qos": int_param(1, 0, 2, "0 at most once, 1 at least once, 2 exactly once; each subscriber gets the lower "
                              "of this and its subscription's QoS", label="QoS"),
    "retain": bool_param(False, "The broker keeps it as the topic's last message and sends it to whoever "
                                "subscribes later", label="Retain"),
}
SUBSCRIBER = Param("text", "s1", "Subscriber name; a new name connects a new subscriber (clean session), "
                   f"up to {MAX_SUBSCRIBERS} per run", max_length=12, check=checked_name, label="Subscriber")
FILTER = Param("text", "home/#", "Topic filter: + matches one whole level, # the rest (whole last level only)",
               max_length=200, check=checked_filter, label="Filter")
SUBSCRIBE_PARAMS = {
    "subscriber": SUBSCRIBER,
    "filter": FILTER,
    "qos": int_param(1, 0, 2, "The most QoS this subscription accepts (0, 1 or 2)", label="QoS"),
}
UNSUBSCRIBE_PARAMS = {"subscriber": SUBSCRIBER, "filter": FILTER}
SLOW_PARAMS = {"delay_ms": int_param(500, 0, MAX_DELAY_MS, "Each message takes this long to handle from now on "
                                                           "(0 = normal speed)", label="Delay (ms)")}


class Subscriber:
    """A subscriber's spec, its connection and what the run asked it to do next."""

    def __init__(self, spec: SubscriberSpec, client_id: str, conn: Connection) -> None:
        self.spec = spec
        self.name = spec.name
        self.actor = spec.actor
        self.client_id = client_id
        self.conn = conn
        self._lock = threading.Lock()
        # "" | "lose_ack" (drop before acking) | "leave" (ack, then DISCONNECT), on handling message ≥ _armed_from
        self._armed = ""
        self._armed_from = 0
        self.owed_pubcomp: list[int] = []
        self.away = False
        self.connects = 0
        self.dropped_seq = 0  # the seq of its last crash: the cause of the DUP=1 copies that follow
        # filter → QoS of each subscription held; replaced whole (never mutated) so network
        # threads read a consistent one while the run thread subscribes and unsubscribes.
        self.filters: dict[str, int] = {spec.filter: spec.qos}
        self.by_hand: set[str] = set()  # filters subscribed by hand
        # topic → (QoS, filter) of the subscription it reaches this subscriber by; (None, "") for none.
        self._by_topic: dict[str, tuple[int | None, str]] = {}
        self.delay_s = 0.0  # each message's handling takes this long (the slow action)

    def set_filters(self, filters: dict[str, int]) -> None:
        self.filters, self._by_topic = filters, {}

    def _subscription(self, topic: str) -> tuple[int | None, str]:
        cache = self._by_topic
        if topic not in cache:
            held = [(qos, f) for f, qos in self.filters.items() if matches(f, topic)]
            # Overlapping subscriptions: the broker delivers at the highest QoS among them.
            cache[topic] = (max(q for q, _ in held), held[0][1]) if held else (None, "")
        return cache[topic]

    def subscription_qos(self, topic: str) -> int | None:
        """The QoS this subscriber receives ``topic`` with (its highest matching subscription); None: no match."""
        return self._subscription(topic)[0]

    def filter_for(self, topic: str) -> str:
        """The subscription ``topic`` reaches this subscriber by (the first held that matches), or its own."""
        return self._subscription(topic)[1] or self.spec.filter

    def arm(self, how: str, from_n: int) -> None:
        with self._lock:
            self._armed, self._armed_from = how, from_n

    @property
    def armed(self) -> bool:
        return bool(self._armed)  # one read (atomic); take_arm decides under the lock

    def take_arm(self, n: int | None = None) -> str:
        """The pending way of leaving, if handling message ``n`` triggers it (``None``: cancel it)."""
        with self._lock:
            if n is not None and (not self._armed or n < self._armed_from):
                return ""
            how, self._armed = self._armed, ""
            return how


def on_subscriber(handler: Callable[..., str]) -> Callable[..., str]:
    """An action handler aimed at one subscriber, given the subscriber its target names (refused if none)."""
    name = handler.__name__.removeprefix("on_")

    @functools.wraps(handler)
    def resolved(self: MqttQos, target: str, **params: Any) -> str:
        sub = self.subs.get(target.removeprefix("subscriber:"))
        if sub is None:
            self.ctx.emit("error", "runner", reason=f"{name}: no subscriber {target!r}")
            return f"no subscriber named {target}"
        self.manual_actions += 1
        return handler(self, sub, **params)

    return resolved


class MqttQos(Workflow):
    slug = "mqtt-qos"
    title = "MQTT QoS, wildcards and persistent sessions"
    pattern = "async"
    protocol = "mqtt"
    broker = "mqtt"
    lesson = (
        "MQTT is light pub/sub on topics: subscribers hold filters where + matches one level and # the rest. "
        "A message is delivered at the lower of the publisher's and the subscriber's QoS. QoS 0 is fire and "
        "forget; QoS 1 is at least once (a lost PUBACK means the broker sends it again with DUP set: a "
        "duplicate); QoS 2 is exactly once. A persistent session (clean_session false) keeps QoS 1/2 messages "
        "for a subscriber that is away; retained messages reach subscribers that join later."
    )
    params = {
        "messages": int_param(12, 0, 5000, "Messages the publisher sends, cycling through the topics"),
        "rate": float_param(2.0, 0.0, 2000.0, "Messages per second (0 = as fast as possible)"),
        "qos": choice_param(2, (0, 1, 2), "Publisher QoS; each delivery uses the lower of this and the subscriber's QoS",
                            label="publisher QoS"),
        "retain": bool_param(True, "Publish with the RETAIN flag: the broker keeps the last message of each topic "
                                   "for subscribers that join later"),
        "topics": Param("json", DEFAULT_TOPICS, "Topic names the publisher cycles through (JSON list)",
                        check=parse_topics),
        "subscribers": Param("json", DEFAULT_SUBSCRIBERS,
                             "Subscribers (JSON list): name, filter (+ one level, # the rest), qos 0-2, "
                             "clean_session (false = persistent session), late (subscribes after the last message)",
                             check=parse_subscribers, editor="mqtt-subscribers"),
        "disconnect": Param("text", "s1,s2,s3", "Subscribers (comma-separated names) that leave mid-stream; "
                                                "empty = nobody", max_length=120),
        "disconnect_at": int_param(5, 0, 5000, "They leave after handling this message (0 = never)"),
        "away_messages": int_param(4, 0, 5000, "Messages published while they are away before they reconnect"),
        "lose_ack": bool_param(True, "Leave by dropping the connection after handling a message but before "
                                     "acknowledging it (PUBACK / PUBCOMP never sent)"),
        "idempotent": bool_param(False, "Subscribers keep an inbox of handled message ids and skip duplicates"),
    }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        params, errors = super().validate(given)
        if errors:
            return params, errors
        names = {s["name"]: s for s in params["subscribers"]}
        leaving = [n.strip() for n in params["disconnect"].split(",") if n.strip()]
        for name in leaving:
            if name not in names:
                errors["disconnect"] = f"no subscriber named {name!r}; subscribers: {', '.join(names)}"
            elif names[name]["late"]:
                errors["disconnect"] = f"{name} is a late subscriber: it only joins after the last message"
        params["disconnect"] = ",".join(leaving)
        return params, errors

    @classmethod
    def caveats(cls) -> list[str]:
        from ..transports import get_broker

        return get_broker("mqtt").caveats()

    def expected(self, params: dict[str, Any]) -> int:
        return predict(params).totals()["delivered"]

    def pace(self, params: dict[str, Any]) -> tuple[int, float]:
        """Per message a publish, its PUBACK/PUBCOMP, and a route, deliver and process per matching subscriber."""
        messages, topics = params["messages"], params["topics"]
        if not messages or not topics:
            return 0, 0.0
        filters = [s.filter for s in subscribers_of(params) if not s.late]
        routes = sum(matches(f, topic_of(params, n)) for n in range(1, len(topics) + 1) for f in filters)
        per_message = 1 + (params["qos"] > 0) + 3 * routes / len(topics)
        rate = params["rate"]
        return round(messages * per_message), rate * per_message if rate else math.inf

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        self.mqtt = self.ctx.broker("mqtt")
        self.host, self.port = self.mqtt.host, self.mqtt.port
        self.token = secrets.token_hex(3)
        # Unique per run: runs (and test sessions reusing run ids) never see each other's topics.
        self.prefix = f"flows/{self.ctx.namespace}-{self.token}"
        self._head = self.prefix + "/"  # what every topic of this run starts with (read per delivery)
        self.ledger = Ledger()
        self.specs = subscribers_of(self.p)
        # The deliveries ``expected`` counts (subscriber → message numbers): a first delivery
        # outside it (a broker departing from the spec, a button pressed) is marked unplanned.
        self.plan = predict(self.p).delivered
        self.subs: dict[str, Subscriber] = {}
        self.retained_topics: set[str] = set()
        self.manual_actions = 0
        self.foreign = 0
        self.publisher: Connection | None = None
        # packet id → (message id, publish started at, QoS, traced) until its PUBACK/PUBCOMP
        self._pending_acks: dict[int, tuple[str, float, int, bool]] = {}
        self._early_acks: dict[int, float] = {}
        self._ack_lock = threading.Lock()
        self.acks_expected = 0
        self.acks = 0
        self.first_publish_at: float | None = None
        self._last_publish: Any = None
        # Per-run caches for the per-message path (topics, filters and wording never change).
        self._matches_by_topic: dict[str, list[Subscriber]] = {}
        # (topic, QoS, who of them is away) → the granted QoS and route outcome per subscriber:
        # shared, never mutated, by every message published alike (the ledger keeps one per message).
        self._routing: dict[tuple[str, int, tuple[bool, ...]], tuple[dict[str, int], dict[str, tuple[str, str]]]] = {}
        # (subscriber, message id) a hand SUBSCRIBE should bring: the retained copies it matches.
        self.hand_expected: list[tuple[str, str]] = []
        self._full_topics: dict[str, tuple[str, str]] = {}
        self._why: dict[tuple[str, str, int, int], str] = {}
        self._start_publisher()

    def start_consumers(self) -> None:
        for spec in self.specs:
            if not spec.late:
                self._join(spec)

    def produce(self) -> None:
        self._publish_all()

    def settle(self) -> None:
        self._wait_for_acks()
        for sub in self.subs.values():
            if sub.away:
                self._reconnect(sub)
        for spec in self.specs:
            if spec.late:
                self._join(spec)
        self._drain()

    def report(self) -> dict[str, Any]:
        return self._result()

    def teardown(self) -> None:
        if not hasattr(self, "subs"):
            return  # the broker was never reached
        for sub in self.subs.values():
            try:
                sub.conn.close()
            except Exception:  # noqa: BLE001 - best effort; the broker drops it anyway
                pass
        if self.publisher is not None:
            try:
                if self.publisher.online.is_set():
                    # An empty retained message deletes the topic's retained copy.
                    infos = [self.publisher.client.publish(self.full(t), b"", qos=1, retain=True)
                             for t in sorted(self.retained_topics)]
                    for info in infos:
                        info.wait_for_publish(2.0)
                self.publisher.close()
            except (RuntimeError, ValueError, BrokerUnavailable):
                pass
        for sub in self.subs.values():
            if sub.spec.persistent:
                try:
                    wipe_session(sub.client_id, self.host, self.port)
                except BrokerUnavailable:
                    pass

    @action("Disconnect subscriber", target="subscriber")
    @on_subscriber
    def on_disconnect(self, sub: Subscriber) -> str:
        if sub.away:
            return f"{sub.actor} is disconnected already"
        if self.p["lose_ack"] and sub.spec.qos > 0:
            # Drops while handling the next message published, before acknowledging it.
            sub.arm("lose_ack", len(self.ledger.published) + 1)
            return f"{sub.actor} will drop its connection while handling the next message, before acknowledging it"
        self._leave(sub)
        return f"{sub.actor} disconnected"

    @action("Reconnect subscriber", target="subscriber")
    @on_subscriber
    def on_reconnect(self, sub: Subscriber) -> str:
        if sub.away:
            self._reconnect(sub)
            return f"{sub.actor} reconnected"
        if sub.take_arm():
            return f"{sub.actor} stays connected: its pending disconnect is called off"
        return f"{sub.actor} is connected already"

    # -- hands on (interactive runs) ---------------------------------------------------

    @action("Publish", params=PUBLISH_PARAMS, hands_on=True)
    def on_publish(self, target: str, topic: str, qos: int, retain: bool) -> dict[str, Any]:
        self.manual_actions += 1
        message_id, routes = self._publish(len(self.ledger.published) + 1, topic, qos, retain, by_hand=True)
        if not routes:
            said = "no subscriber's filter matches it"
        else:
            said = "; ".join(f"{name}: {outcome}" for name, (outcome, _) in routes.items())
        kept = " (retained)" if retain else ""
        return {"result": f"published {message_id} to {topic} at QoS {qos}{kept}: {said}", "message_id": message_id}

    @action("Subscribe", params=SUBSCRIBE_PARAMS, hands_on=True)
    def on_subscribe(self, target: str, subscriber: str, filter: str, qos: int) -> str:
        refused = self.check_action("subscribe", target, {"subscriber": subscriber, "filter": filter, "qos": qos})
        if refused:
            return "; ".join(refused.values())
        self.manual_actions += 1
        self._flush_publisher(2.0)  # what was published before the SUBSCRIBE is routed without it
        self._expect_retained(subscriber, filter)
        sub = self.subs.get(subscriber)
        if sub is None:
            self._join(SubscriberSpec(subscriber, filter, qos), by_hand=True)
            return f"{subscriber} connected (clean session) and subscribed to {filter} at QoS {qos}"
        sub.by_hand.add(filter)
        # Held before the SUBSCRIBE goes out: the retained copies right behind the SUBACK are expected.
        sub.set_filters({**sub.filters, filter: qos})
        self._subscriptions_changed()
        granted = sub.conn.subscribe(self.full(filter), qos)
        return f"{subscriber} subscribed to {filter} at QoS {qos} (the broker granted {granted})"

    @action("Unsubscribe", params=UNSUBSCRIBE_PARAMS, hands_on=True)
    def on_unsubscribe(self, target: str, subscriber: str, filter: str) -> str:
        refused = self.check_action("unsubscribe", target, {"subscriber": subscriber, "filter": filter})
        if refused:
            return "; ".join(refused.values())
        self.manual_actions += 1
        sub = self.subs[subscriber]
        self._flush_publisher(2.0)  # what was published before the UNSUBSCRIBE still reaches it
        sub.conn.unsubscribe(self.full(filter))
        qos = sub.filters.get(filter)
        sub.set_filters({f: q for f, q in sub.filters.items() if f != filter})
        self._subscriptions_changed()
        self.ctx.emit("revoke", sub.actor, subscriber=subscriber, action="unsubscribe", filter=filter, qos=qos,
                      by_hand=True, reason=f"{subscriber} sent UNSUBSCRIBE {filter}: nothing more is routed to it")
        left = ", ".join(sub.filters) or "none"
        return f"{subscriber} unsubscribed from {filter}; its filters now: {left}"

    @action("Slow down", target="subscriber", params=SLOW_PARAMS, hands_on=True)
    @on_subscriber
    def on_slow(self, sub: Subscriber, delay_ms: int) -> str:
        sub.delay_s = delay_ms / 1000.0
        return f"{sub.actor} takes {delay_ms} ms per message from now on" if delay_ms else f"{sub.actor} is back to normal speed"

    def check_action(self, name: str, target: str, params: dict[str, Any]) -> dict[str, str]:
        if name not in ("subscribe", "unsubscribe"):
            return {}
        subs = dict(getattr(self, "subs", {}))
        name_, topic_filter = params["subscriber"], params["filter"]
        sub = subs.get(name_)
        if sub is None:
            if name == "unsubscribe":
                return {"subscriber": f"no subscriber named {name_}; subscribers: {', '.join(subs) or 'none yet'}"}
            late = [s.name for s in getattr(self, "specs", []) if s.late and s.name not in subs]
            if name_ in late:
                return {"subscriber": f"{name_} is a late subscriber: it joins only when the run ends"}
            if len(subs) + len(late) >= MAX_SUBSCRIBERS:
                return {"subscriber": f"at most {MAX_SUBSCRIBERS} subscribers per run; use one of: {', '.join(subs)}"}
            return {}
        if sub.away:
            return {"subscriber": f"{name_} is disconnected: reconnect it first"}
        if name == "unsubscribe" and topic_filter not in sub.filters:
            return {"filter": f"{name_} holds no subscription to {topic_filter}; "
                              f"its filters: {', '.join(sub.filters) or 'none'}"}
        if name == "subscribe" and topic_filter not in sub.filters and len(sub.filters) >= MAX_FILTERS:
            return {"filter": f"{name_} holds {MAX_FILTERS} subscriptions already, the most a subscriber may"}
        return {}

    def _expect_retained(self, subscriber: str, topic_filter: str) -> None:
        """A SUBSCRIBE brings the retained copy of every matching topic (MQTT 3.1.1 §3.3.1.3): settle waits for them."""
        latest, ids = self._retained()
        self.hand_expected += [(subscriber, ids[n]) for n in retained_for(topic_filter, latest)]

    def _retained(self) -> tuple[dict[str, int], dict[int, str]]:
        """The broker's retained copies as published so far: topic → latest number, and number → message id."""
        latest: dict[str, int] = {}
        ids: dict[int, str] = {}
        for item in sorted(self.ledger.published.values(), key=lambda p: p.n):
            if item.retain:
                latest[item.topic], ids[item.n] = item.n, item.message_id
        return latest, ids

    def targets(self, action: str) -> list[str]:
        """Disconnect: connected subscribers not about to leave; reconnect: the others; slow: all."""
        subs = list(dict(getattr(self, "subs", {})).values())
        if action == "slow":
            return [sub.actor for sub in subs]
        leaving_or_gone = {sub.actor for sub in subs if sub.away or sub.armed}
        if action == "reconnect":
            return [sub.actor for sub in subs if sub.actor in leaving_or_gone]
        return [sub.actor for sub in subs if sub.actor not in leaving_or_gone]

    # -- topics ------------------------------------------------------------------------

    def full(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"

    def relative(self, topic: str) -> str | None:
        head = self._head
        return topic[len(head):] if topic.startswith(head) else None

    def _start_publisher(self) -> None:
        self.publisher = Connection(f"fl-{self.token}-pub", self.host, self.port, clean_session=True)
        self.publisher.client.on_publish = self._on_publish
        self.publisher.connect()

    def _join(self, spec: SubscriberSpec, by_hand: bool = False) -> Subscriber:
        conn = Connection(f"fl-{self.token}-{spec.name}", self.host, self.port, spec.clean_session, manual_ack=True)
        sub = Subscriber(spec, conn.client_id, conn)
        if by_hand:
            sub.by_hand.add(spec.filter)
        conn.client.on_message = functools.partial(self._on_message, sub)  # called with (client, userdata, msg)
        conn.on_connected = lambda present: self._on_connected(sub, present)
        conn.on_subscribed = lambda codes, topic_filter: self._on_subscribed(sub, codes, topic_filter)
        conn.connect()
        self.subs = {**self.subs, spec.name: sub}  # whole, for readers on web threads
        self._subscriptions_changed()
        conn.subscribe(self.full(spec.filter), spec.qos)
        return sub

    def _publish_all(self) -> None:
        p = self.p
        pacer = self.ctx.pacer(p["rate"])
        window = disconnect_window(p)
        going = [self.subs[name] for name in leaving(p) if name in self.subs] if window else []
        for n in range(1, p["messages"] + 1):
            pacer.wait()  # also hands the run's actions to on_disconnect / on_reconnect
            topic = topic_of(p, n)
            if window and n == window[0]:
                for sub in going:
                    if matches(sub.spec.filter, topic) and not sub.away:
                        # Leave from inside the callback of this very message, so it is handled first.
                        sub.arm("lose_ack" if p["lose_ack"] else "leave", n)
            self._publish(n, topic)
            if window and n == window[0]:
                for sub in going:
                    self._leave(sub, wait_for=f"m{n}")
            if window and n == window[1] and n < p["messages"]:
                for sub in going:
                    if sub.away:
                        self._reconnect(sub)

    def _subscriptions_changed(self) -> None:
        self._matches_by_topic.clear()
        self._routing.clear()

    def _matching(self, topic: str) -> list[Subscriber]:
        """Subscribers (not late) with a filter matching ``topic``; the cache is cleared when subscriptions change."""
        subs = self._matches_by_topic.get(topic)
        if subs is None:
            subs = self._matches_by_topic[topic] = [
                s for s in self.subs.values() if not s.spec.late and s.subscription_qos(topic) is not None]
        return subs

    def _publish(self, n: int, topic: str, qos: int | None = None, retain: bool | None = None,
                 by_hand: bool = False) -> tuple[str, dict[str, tuple[str, str]]]:
        p, ctx = self.p, self.ctx
        qos = p["qos"] if qos is None else qos
        retain = p["retain"] if retain is None else retain
        message_id = f"m{n}"
        granted, routes = self._routes(topic, qos)
        traced = ctx.traced(message_id)  # asked once: the PUBACK and the deliveries read it off the ledger
        now = time.perf_counter()
        self.ledger.publish(Published(message_id, n, topic, qos, retain, now, routes, granted, traced))
        if self.first_publish_at is None:
            self.first_publish_at = now
        if traced:
            self._emit_publish(message_id, n, topic, qos, retain, by_hand, routes, granted)
        else:  # sampled and outside the sample: plain events, counted (none of them is ever an anomaly)
            ctx.tally(PUBLISHER, PUBLISHER, "publish")
            if routes:
                ctx.tally(PUBLISHER, BROKER, "route", len(routes))
        full = self._full_topics.get(topic)
        if full is None:
            full = self._full_topics[topic] = (self.full(topic), json.dumps(topic))
        payload = f'{{"id":"{message_id}","run":"{self.token}","n":{n},"topic":{full[1]}}}'.encode()
        if retain:
            self.retained_topics.add(topic)
        started = time.perf_counter()
        info = self.publisher.client.publish(full[0], payload, qos=qos, retain=retain)
        self._last_publish = info
        if qos > 0:
            self.acks_expected += 1
            with self._ack_lock:
                acked_at = self._early_acks.pop(info.mid, None)
                if acked_at is None:
                    self._pending_acks[info.mid] = (message_id, started, qos, traced)
            if acked_at is not None:
                self._emit_ack(message_id, started, acked_at, qos, traced)
        return message_id, routes

    def _routes(self, topic: str, qos: int) -> tuple[dict[str, int], dict[str, tuple[str, str]]]:
        """Per matching subscriber: the QoS its subscription grants, and the route outcome (and why) now."""
        matching = self._matching(topic)
        key = (topic, qos, tuple([sub.away for sub in matching]))
        known = self._routing.get(key)
        if known is None:
            granted = {sub.name: sub.subscription_qos(topic) or 0 for sub in matching}
            routes = {sub.name: self._route_outcome(sub, qos, granted[sub.name]) for sub in matching}
            known = self._routing[key] = (granted, routes)
        return known

    def _emit_publish(self, message_id: str, n: int, topic: str, qos: int, retain: bool, by_hand: bool,
                      routes: dict[str, tuple[str, str]], granted: dict[str, int]) -> None:
        published: dict[str, Any] = {"topic": topic, "qos": qos, "retain": retain, "n": n, "matched": list(routes)}
        if qos == 0:
            # Fire and forget: no broker confirmation exists, so the caller waits for nothing.
            published.update(perceived_ms=0.0,
                             perceived_note="QoS 0: no acknowledgement, the publisher waits for nothing")
        if by_hand:
            published["by_hand"] = True
        # The publish and its routes stamped in one step (one lock round trip for them all).
        self.ctx.emit_many([("publish", PUBLISHER, message_id, 1, False, published)] + [
            ("route", BROKER, message_id, 1, False,
             {"topic": topic, "filter": self.subs[name].filter_for(topic), "subscriber": name,
              "qos": effective_qos(qos, granted[name]), "outcome": outcome, "why": why})
            for name, (outcome, why) in routes.items()])

    def _route_outcome(self, sub: Subscriber, pub_qos: int, sub_qos: int) -> tuple[str, str]:
        qos = effective_qos(pub_qos, sub_qos)
        outcome = route(not sub.away, sub.spec.persistent, qos)
        key = (sub.name, outcome, pub_qos, sub_qos)
        why = self._why.get(key)
        if why is None:
            lower = f"QoS min({pub_qos}, {sub_qos}) = {qos}"
            why = self._why[key] = {
                "deliver": f"{sub.name} is connected: deliver at {lower}",
                "queue": f"{sub.name} is away; its persistent session queues it ({lower})",
                "drop": f"{sub.name} is away; {lower}: QoS 0 messages are never queued, even for a persistent session"
                if sub.spec.persistent else f"{sub.name} is away with a clean session: the broker keeps nothing for it",
            }[outcome]
        return outcome, why

    # -- publisher callbacks (network thread) -------------------------------------------

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # paho calls this holding the lock its publish() needs: the run thread waits while it runs.
        acked_at = time.perf_counter()
        with self._ack_lock:
            entry = self._pending_acks.pop(mid, None)
            if entry is None:
                self._early_acks[mid] = acked_at
                return
        self._emit_ack(entry[0], entry[1], acked_at, entry[2], entry[3])

    def _emit_ack(self, message_id: str, started: float, acked_at: float, qos: int, traced: bool) -> None:
        """Record (or count) the ack of a QoS 1/2 message, then count it in ``acks``: the run, once it
        has them all, finds every ack event already emitted or tallied."""
        if traced:
            self.ctx.emit("ack", PUBLISHER, message_id, ack="PUBACK" if qos == 1 else "PUBCOMP", qos=qos,
                          perceived_ms=round((acked_at - started) * 1000.0, 3))
        else:
            self.ctx.tally(PUBLISHER, PUBLISHER, "ack")
        with self._ack_lock:
            self.acks += 1

    def _wait_for_acks(self) -> None:
        if self.acks_expected == 0:
            return
        try:
            self.ctx.wait_until(lambda: self.acks >= self.acks_expected, ACK_WAIT_S, "the broker's acks", step=0.02,
                                tend=False)
        except TimeoutError:
            pass  # the result counts the acks that came

    # -- subscriber callbacks (network threads) -----------------------------------------

    def _on_connected(self, sub: Subscriber, session_present: bool) -> None:
        sub.connects += 1
        sub.away = False
        for mid in sub.owed_pubcomp:
            # paho, acknowledging by hand, stays silent on a PUBREL it no longer knows; the
            # broker resends exactly that PUBREL, so complete the exchange it is waiting for.
            sub.conn.client.ack(mid, 2)
        sub.owed_pubcomp.clear()
        self.ctx.emit("assign", sub.actor, subscriber=sub.name, action="connect" if sub.connects == 1 else "reconnect",
                      clean_session=sub.spec.clean_session, session_present=session_present,
                      client_id=sub.client_id)

    def _on_subscribed(self, sub: Subscriber, codes: list[int], full_filter: str) -> None:
        # Emitted on the network thread before the retained copies the SUBACK is followed by.
        granted = codes[0] if codes else 128
        topic_filter = self.relative(full_filter) or sub.spec.filter
        hand = {"by_hand": True} if topic_filter in sub.by_hand else {}
        self.ctx.emit("assign", sub.actor, subscriber=sub.name, action="subscribe", filter=topic_filter,
                      qos=sub.filters.get(topic_filter, sub.spec.qos), granted_qos=granted, late=sub.spec.late, **hand)

    def _on_message(self, sub: Subscriber, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self._handle_message(sub, client, msg)
        except Exception as exc:  # noqa: BLE001 - a callback must never kill paho's loop
            self.ctx.emit("error", sub.actor, subscriber=sub.name, reason=f"{type(exc).__name__}: {exc}")

    def _handle_message(self, sub: Subscriber, client: Any, msg: Any) -> None:
        ctx, spec = self.ctx, sub.spec
        topic = self.relative(msg.topic)
        qos, dup, retain = msg.qos, bool(msg.dup), bool(msg.retain)
        try:
            body = orjson.loads(msg.payload)  # several times faster than json.loads on every delivery
            message_id = body["id"] if body.get("run") == self.token else None
        except (ValueError, TypeError, KeyError, AttributeError):
            message_id = None
        if topic is None or message_id is None:
            # Not this run's (amqtt can send other runs' retained messages on connect: flows.mqtt.caveats).
            self.foreign += 1
            client.ack(msg.mid, msg.qos)
            return
        delivery, published = self.ledger.deliver(sub.name, message_id,
                                                  duplicate_reason(msg) if dup or retain else DELIVERED_AGAIN)
        if published is not None and not published.traced and self._plain(sub, delivery, published, qos, dup, retain):
            # Sampled, outside the sample, and as planned: counted, no attrs built (contracts: "Fidelity").
            ctx.tally(BROKER, sub.actor, "deliver")
            ctx.tally(sub.actor, sub.actor, "process")
            if sub.armed:
                self._handled(sub, client, msg, message_id, published)
            else:
                client.ack(msg.mid, qos)  # what _handled does for a subscriber not about to leave
            return
        pub_qos = published.qos if published is not None else self.p["qos"]
        # Routed when published (a later UNSUBSCRIBE does not call back what is in flight),
        # or matching a subscription held now (retained copies on SUBSCRIBE).
        held_qos = sub.subscription_qos(topic)
        routed_qos = published.subscription_qos.get(sub.name) if published is not None else None
        sub_qos = routed_qos if routed_qos is not None else held_qos if held_qos is not None else spec.qos
        topic_filter = sub.filter_for(topic)
        expected_qos = effective_qos(pub_qos, sub_qos)
        attrs: dict[str, Any] = {
            "topic": topic, "filter": topic_filter, "subscriber": sub.name, "qos": qos, "qos_expected": expected_qos,
            "dup": dup, "retain": retain, "packet_id": msg.mid,
        }
        notes = []
        if routed_qos is None and held_qos is None:
            attrs["unexpected"] = True
            notes.append(f"the broker sent this although none of {sub.name}'s filters ({', '.join(sub.filters)}) "
                         f"matches {topic!r}")
            self.ledger.note_unexpected({"message_id": message_id, "subscriber": sub.name, "topic": topic,
                                         "filter": topic_filter, "retain": retain})
        if qos != expected_qos:
            notes.append(f"delivered at QoS {qos}; MQTT 3.1.1 says min(publish QoS {pub_qos}, "
                         f"subscription QoS {sub_qos}) = {expected_qos}")
            self.ledger.note_qos_difference({"message_id": message_id, "subscriber": sub.name,
                                             "qos": qos, "expected": expected_qos})
        if retain:
            notes.append("RETAIN=1: the broker sent a stored copy, not the live message")
        elif dup and not delivery.duplicate:
            notes.append("DUP=1, but the first copy never reached this subscriber")
        if notes:
            attrs["note"] = "; ".join(notes)
        if delivery.duplicate:
            attrs["reason"] = delivery.reason
            # A DUP=1 copy is the broker resending what the dropped connection never acked: the crashed
            # message itself, or an earlier one whose ack had not left the socket yet.
            cause = delivery.cause_seq or (sub.dropped_seq if dup else 0)
            if cause:
                attrs["cause_seq"] = cause
            self.ledger.note_duplicate({"message_id": message_id, "subscriber": sub.name, "attempt": delivery.attempt,
                                        "dup": dup, "retain": retain, "reason": attrs["reason"]})
        deliver = ("deliver", sub.actor, message_id, delivery.attempt, delivery.duplicate, attrs)
        if sub.delay_s:
            ctx.emit_many([deliver])
            deliver = None
            ctx.cancelled.wait(sub.delay_s)  # slow handling, on this subscriber's own network thread

        effect = not (self.p["idempotent"] and delivery.duplicate)
        done: dict[str, Any] = {"subscriber": sub.name, "topic": topic, "effect": effect}
        if delivery.duplicate:
            done["reason"] = attrs["reason"] if effect else f"{attrs['reason']}; skipped: already in the inbox"
        elif published is None or published.n not in self.plan.get(sub.name, ()):
            done["planned"] = False
        if delivery.end_to_end_ms is not None and not retain:
            done["end_to_end_ms"] = delivery.end_to_end_ms
        process = ("process", sub.actor, message_id, delivery.attempt, delivery.duplicate, done)
        # Unslowed, receiving and handling are one step: both events stamped together.
        ctx.emit_many([deliver, process] if deliver is not None else [process])
        self._handled(sub, client, msg, message_id, published)

    def _plain(self, sub: Subscriber, delivery: Delivery, published: Published, qos: int, dup: bool,
               retain: bool) -> bool:
        """A first, live, planned delivery at the QoS MQTT 3.1.1 says, to an unslowed subscriber: nothing to note."""
        if delivery.duplicate or dup or retain or sub.delay_s:
            return False
        routed_qos = published.subscription_qos.get(sub.name)
        return routed_qos is not None and qos == effective_qos(published.qos, routed_qos) \
            and published.n in self.plan.get(sub.name, ())

    def _handled(self, sub: Subscriber, client: Any, msg: Any, message_id: str, published: Published | None) -> None:
        """After handling: acknowledge, unless the subscriber is armed to drop or leave on this message."""
        ctx, spec, qos = self.ctx, sub.spec, msg.qos
        how = sub.take_arm(published.n if published is not None else 0) if sub.armed else ""
        if how == "lose_ack":
            sub.away = True
            if qos == 2:
                sub.owed_pubcomp.append(msg.mid)
            missing = {0: "QoS 0 has no acknowledgement", 1: "its PUBACK was never sent",
                       2: "its PUBCOMP was never sent"}[qos]
            seq = ctx.emit("crash", sub.actor, message_id, subscriber=sub.name, qos=qos, message_ids=[message_id],
                           session="persistent" if spec.persistent else "clean",
                           reason=f"connection dropped after handling {message_id}: {missing}")
            sub.dropped_seq = seq
            if qos:  # the broker still owes this message: its next copy is this crash's doing
                self.ledger.attempts.caused_by(sub.name, message_id, seq)
            sub.conn.drop()
            return
        client.ack(msg.mid, qos)
        if how == "leave":
            self._announce_leave(sub, message_id)
            sub.conn.leave()

    # -- leaving and coming back (run thread) -------------------------------------------

    def _leave(self, sub: Subscriber, wait_for: str = "") -> None:
        """Make ``sub`` go away: at once, or (if armed) when it handles ``wait_for``."""
        if sub.away:
            return
        if wait_for and self._armed_for(sub, wait_for):
            if sub.conn.wait_offline(5.0):
                return
            sub.take_arm()  # the message never came: leave politely instead
        sub.away = True
        self._announce_leave(sub, "")
        sub.conn.leave()
        sub.conn.wait_offline(5.0)

    def _armed_for(self, sub: Subscriber, message_id: str) -> bool:
        if not sub.armed:
            return False
        # Armed subscribers drop inside their own callback once the message arrives.
        try:
            self.ctx.wait_until(lambda: sub.conn.offline.is_set() or self.ledger.got(sub.name, message_id), 5.0,
                                f"{sub.name} to get {message_id}", wake=sub.conn.offline, step=0.02, tend=False)
        except TimeoutError:
            pass
        return True

    def _announce_leave(self, sub: Subscriber, message_id: str) -> None:
        sub.away = True
        kept = "keeps its QoS 1/2 messages" if sub.spec.persistent else "is discarded (clean session)"
        self.ctx.emit("revoke", sub.actor, message_id, subscriber=sub.name, action="disconnect",
                      session="persistent" if sub.spec.persistent else "clean",
                      reason=f"{sub.name} sent DISCONNECT and left; its session {kept}")

    def _reconnect(self, sub: Subscriber) -> None:
        sub.take_arm()
        sub.conn.wait_offline(5.0)
        self._flush_publisher()
        present = sub.conn.connect()
        if not present:
            # A clean session forgot its subscriptions; subscribing again also brings retained copies.
            for topic_filter, qos in sub.filters.items():
                sub.conn.subscribe(self.full(topic_filter), qos)

    def _flush_publisher(self, timeout: float = 5.0) -> None:
        """Let the broker have every message published so far (PUBACK/PUBCOMP, or written for QoS 0).

        paho writes from its own thread; without this a subscriber could be back before the
        broker even saw the messages published "while it was away".
        """
        if self._last_publish is not None:
            try:
                self._last_publish.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass

    # -- the end ---------------------------------------------------------------------------

    def _expected_pairs(self) -> list[tuple[str, str]]:
        """Deliveries still to come if the broker follows MQTT 3.1.1 (losses excluded)."""
        pairs = []
        for item in self.ledger.published.values():
            for name, (outcome, _) in item.routes.items():
                if outcome != "drop":
                    pairs.append((name, item.message_id))
        retained, ids = self._retained()
        for sub in self.subs.values():
            if sub.spec.late:
                pairs += [(sub.name, ids[n]) for n in retained_for(sub.spec.filter, retained)]
        return pairs + self.hand_expected

    def _drain(self) -> None:
        wanted = self._expected_pairs()
        started = time.perf_counter()

        def over() -> bool:
            return self.ledger.outstanding(wanted) == 0 or (
                self.ledger.quiet_for(started) >= QUIET_S and not any(s.away for s in self.subs.values()))

        try:
            self.ctx.wait_until(over, DRAIN_LIMIT_S, "every expected delivery", step=0.02)
        except TimeoutError:
            return  # what never came is reported as lost
        if self.ledger.outstanding(wanted) == 0:
            self.ctx.sleep(SETTLE_S)  # late duplicates

    def _result(self) -> dict[str, Any]:
        ledger = self.ledger
        names = [s.name for s in self.subs.values() if not s.spec.late]
        lost = ledger.lost(names)
        observed = {"delivered": len(ledger.counts), "duplicates": len(ledger.duplicates), "lost": len(lost)}
        spec = predict(self.p)
        differences = []
        if not self.manual_actions:
            expected_totals = spec.totals()
            for key in ("delivered", "duplicates", "lost"):
                if observed[key] != expected_totals[key]:
                    differences.append(f"{key}: broker {observed[key]}, MQTT 3.1.1 {expected_totals[key]}")
        if ledger.unexpected:
            differences.append(f"{len(ledger.unexpected)} deliveries to subscribers whose filter does not match")
        if ledger.qos_differences:
            differences.append(f"{len(ledger.qos_differences)} deliveries at a QoS other than min(publish, subscription)")
        window = (ledger.last_delivery_at - self.first_publish_at) if self.first_publish_at and ledger.deliveries else 0.0
        return {
            "broker": self.mqtt.describe(),
            "prefix": self.prefix,
            "topics": self.p["topics"],
            "subscribers": [{**asdict(s.spec), "client_id": s.client_id, "filters": s.filters}
                            for s in self.subs.values()],
            "lost": len(lost),
            "lost_pairs": lost,
            "duplicates": ledger.duplicates,
            "unexpected": ledger.unexpected,
            "qos_differences": ledger.qos_differences,
            "observed": observed,
            "spec": spec.as_dict(),
            "differences": differences,
            "manual_actions": self.manual_actions,
            "foreign": self.foreign,
            "acks": self.acks,
            "deliveries": ledger.deliveries,
            "throughput_per_s": round(ledger.deliveries / window, 1) if window > 0 else None,
            "window_s": round(window, 4),
        }


def duplicate_reason(msg: Any) -> str:
    if msg.dup:
        return ("redelivered with DUP=1: the broker never got this subscriber's "
                f"{'PUBACK' if msg.qos == 1 else 'PUBREC'} (the connection dropped after handling, before the ack)")
    if msg.retain:
        return "the retained copy was sent again when the subscriber subscribed again"
    return DELIVERED_AGAIN
