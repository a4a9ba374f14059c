"""Pins what kombu's plain ``memory://`` transport does differently from a broker, and our fixes.

``flows.amqp.memory`` exists because of these three departures. If kombu changes (fixes
one, say), the pin fails and the override can go.
"""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from flows.amqp.memory import TRANSPORT_PATH


def plain() -> Connection:
    return Connection("memory://localhost//")


def ours() -> Connection:
    return Connection("memory://localhost//", transport=TRANSPORT_PATH)


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"quirk.{tag}.x", f"quirk.{tag}.q"


def topic_gets(conn: Connection, binding: str, key: str) -> bool:
    ex_name, q_name = names()
    exchange = Exchange(ex_name, type="topic")
    queue = Queue(q_name, exchange, routing_key=binding)
    with conn:
        channel = conn.channel()
        queue(channel).declare()
        Producer(channel, exchange=exchange).publish({"k": key}, routing_key=key)
        got = queue(channel).get(no_ack=True) is not None
        queue(channel).delete()
        return got


@pytest.mark.parametrize("binding,key", [("order.#", "order"), ("#.failed", "failed"), ("a.#.b", "a.b")])
def test_plain_memory_topic_hash_does_not_match_zero_words(binding: str, key: str) -> None:
    assert topic_gets(plain(), binding, key) is False
    assert topic_gets(ours(), binding, key) is True  # AMQP: '#' is zero or more words


def crash_with_one_unacked(conn: Connection, observer: Connection) -> object:
    """Take a message without acking it, drop the connection, return what the queue then holds."""
    ex_name, q_name = names()
    exchange = Exchange(ex_name, type="direct")
    queue = Queue(q_name, exchange, routing_key="k")
    with observer:
        channel = observer.channel()
        queue(channel).declare()
        Producer(channel, exchange=exchange).publish({"n": 1}, routing_key="k")
        conn.connect()
        held = []
        with Consumer(conn.channel(), queues=[queue], callbacks=[lambda body, m: held.append(m)], prefetch_count=1):
            conn.drain_events(timeout=1)
        assert len(held) == 1 and not held[0].acknowledged
        conn.collect()  # the consumer's connection is gone without an ack
        again = queue(channel).get(no_ack=True)
        queue(channel).delete()
        return again


def test_plain_memory_forgets_unacked_messages_when_a_consumer_dies() -> None:
    assert crash_with_one_unacked(plain(), plain()) is None


def test_our_memory_broker_requeues_them_marked_redelivered() -> None:
    again = crash_with_one_unacked(ours(), ours())
    assert again is not None and again.payload == {"n": 1} and again.delivery_info["redelivered"] is True


@pytest.mark.parametrize("connect", [plain, ours], ids=["plain", "ours"])
def test_no_headers_exchange_on_either(connect) -> None:
    """kombu's virtual transports know direct, topic and fanout only: binding to headers fails."""
    ex_name, q_name = names()
    exchange = Exchange(ex_name, type="headers")
    queue = Queue(q_name)
    with connect() as conn:
        channel = conn.channel()
        exchange(channel).declare()
        queue(channel).declare()
        with pytest.raises(KeyError, match="headers"):
            queue(channel).bind_to(exchange, arguments={"x-match": "all", "a": "1"})
        exchange(channel).delete()
        queue(channel).delete()


def test_our_memory_broker_returns_unroutable_mandatory_messages() -> None:
    ex_name, _ = names()
    exchange = Exchange(ex_name, type="direct")
    returned = []
    with ours() as conn:
        producer = Producer(conn.channel(), exchange=exchange, on_return=lambda exc, ex, key, m: returned.append(key))
        producer.publish({"n": 1}, routing_key="nobody", mandatory=True)
        producer.publish({"n": 2}, routing_key="nobody", mandatory=False)
    assert returned == ["nobody"]
