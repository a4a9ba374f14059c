"""How the ``outbox`` workflow's message travels: one narrow interface, one carrier per broker.

The lesson (dual write against the transactional outbox) is the same whichever broker
carries the message, so the workflow only ever calls a carrier's ``open``, ``publish``,
``consume`` and ``close``; the ``broker`` parameter picks the carrier from ``CARRIERS``
(resolved lazily, so no broker client is imported before a run needs it).

* ``amqp``: a direct exchange and one queue of the run on RabbitMQ or kombu's memory
  transport; the publish is confirmed by the broker.
* ``kafka``: a one-partition topic of the run on Kafka or Tansu; the publish waits for its
  delivery report; the consumer reads the partition it assigns itself (no group join, so
  a run does not wait seconds for a rebalance that teaches nothing here).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any, Protocol

from ..context import RunContext

EXCHANGE, QUEUE, KEY = "orders", "billing", "order.placed"
TOPIC = "orders"
CONSUMER = "billing"
READY_TIMEOUT_S = 10.0
POLL_S = 0.1

# handler(message_id, payload, where): one delivery to the consumer, on the consumer's thread.
Handler = Callable[[str, dict[str, Any], dict[str, Any]], None]


class Carrier(Protocol):
    protocol: str
    # The topology actor a published message is routed by ("exchange:orders", "topic:orders/p0").
    route_actor: str

    def open(self) -> None:
        """Reach the broker and create the run's exchange and queue, or topic."""

    def publish(self, message_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Hand the message to the broker and wait until it has it; where it went (event attrs)."""

    def consume(self, handler: Handler) -> None:
        """Start the consumer on its own thread; returns once it receives."""

    def close(self) -> None:
        """Stop the consumer and the clients; delete what ``open`` created."""

    @property
    def error(self) -> BaseException | None:
        """Why the consumer stopped on its own, or None."""


CARRIERS: dict[str, str] = {
    "amqp": "flows.outbox.carriers:AmqpCarrier",
    "kafka": "flows.outbox.carriers:KafkaCarrier",
}


def carrier_for(protocol: str, ctx: RunContext) -> Carrier:
    module_name, _, attr = CARRIERS[protocol].partition(":")
    return getattr(import_module(module_name), attr)(ctx)


def _close_thread_db() -> None:
    """The consumer writes the inbox from its own thread: close that thread's connection."""
    from django.db import connection

    connection.close()


class AmqpCarrier:
    protocol = "amqp"
    route_actor = f"exchange:{EXCHANGE}"

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.admin: Any = None
        self.publisher: Any = None
        self.topology: Any = None
        self.consumer: Any = None

    def open(self) -> None:
        from kombu import Producer

        from ..amqp.resources import RunTopology
        from ..amqp.routing_rules import Binding

        self.amqp = self.ctx.broker("amqp")
        self.admin = self.amqp.connection()
        self.publisher = self.amqp.connection(confirm=True)
        self.topology = RunTopology(self.ctx.namespace, EXCHANGE, "direct", [Binding(QUEUE, KEY)])
        self.topology.declare(self.admin.channel())
        self.producer = Producer(self.publisher.channel(), exchange=self.topology.exchange)

    def publish(self, message_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.producer.publish(payload, routing_key=KEY, mandatory=True, serializer="json", retry=False,
                              message_id=message_id)
        return {"exchange": EXCHANGE, "routing_key": KEY, "queue": QUEUE}

    def consume(self, handler: Handler) -> None:
        from ..amqp.consumers import QueueConsumer

        def on_message(_consumer: Any, message: Any) -> None:
            message_id = message.properties.get("message_id") or message.payload["message_id"]
            handler(message_id, message.payload,
                    {"queue": QUEUE, "redelivered": bool(message.delivery_info.get("redelivered"))})
            message.ack()

        self.consumer = QueueConsumer(self.amqp, self.topology.queues[QUEUE], CONSUMER, on_message, logical=QUEUE,
                                      on_exit=_close_thread_db)
        self.consumer.start()
        self.ctx.wait_until(self.consumer.ready.is_set, READY_TIMEOUT_S, f"consumer {CONSUMER} to subscribe")
        if self.error is not None:
            raise RuntimeError(f"consumer {CONSUMER} could not start: {self.error}")

    @property
    def error(self) -> BaseException | None:
        return self.consumer.error if self.consumer is not None else None

    def close(self) -> None:
        from ..amqp.resources import delete_and_release

        if self.consumer is not None:
            self.consumer.stop()
            self.consumer.join(5.0)
        delete_and_release(self.topology, self.admin, self.publisher)


class KafkaCarrier:
    protocol = "kafka"
    route_actor = f"topic:{TOPIC}/p0"

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.producer: Any = None
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def open(self) -> None:
        from confluent_kafka import Producer

        from ..kafka.clients import producer_config, topic_name
        from ..kafka.teardown import create_run_topic

        self.bootstrap = self.ctx.broker("kafka").bootstrap_servers
        self.topic = topic_name(self.ctx.namespace, TOPIC)
        create_run_topic(self.ctx.run_id, self.bootstrap, self.topic, 1)
        self.producer = Producer(producer_config(self.bootstrap, acks="all", client_id="flows-outbox"))

    def publish(self, message_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        reports: list[tuple[Any, Any]] = []
        self.producer.produce(self.topic, key=payload["order_id"].encode(), value=json.dumps(payload).encode(),
                              on_delivery=lambda err, msg: reports.append((err, msg)))
        self.producer.flush(10.0)
        if not reports:
            raise TimeoutError(f"no delivery report for {message_id} within 10 s")
        err, msg = reports[0]
        if err is not None:
            raise RuntimeError(f"Kafka refused {message_id}: {err}")
        return {"topic": TOPIC, "partition": msg.partition(), "offset": msg.offset(), "key": payload["order_id"]}

    def consume(self, handler: Handler) -> None:
        self.thread = threading.Thread(target=self._read, args=(handler,), name=f"outbox-{CONSUMER}", daemon=True)
        self.thread.start()
        self.ctx.wait_until(self.ready.is_set, READY_TIMEOUT_S, f"consumer {CONSUMER} to be assigned its partition")
        if self.error is not None:
            raise RuntimeError(f"consumer {CONSUMER} could not start: {self.error}")

    def _read(self, handler: Handler) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from ..kafka.clients import reader_config, topic_name

        consumer = None
        try:
            consumer = Consumer(reader_config(self.bootstrap, topic_name(self.ctx.namespace, CONSUMER),
                                              client_id=f"flows-outbox-{CONSUMER}"))
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            self.ready.set()
            while not self.stopping.is_set():
                record = consumer.poll(POLL_S)
                if record is None or record.error() is not None:
                    continue
                payload = json.loads(record.value())
                handler(payload["message_id"], payload,
                        {"topic": TOPIC, "partition": record.partition(), "offset": record.offset()})
        except Exception as exc:  # noqa: BLE001 - reported by the workflow's tick
            self.error = exc
            self.ready.set()
        finally:
            if consumer is not None:
                consumer.close()
            _close_thread_db()

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5.0)
        if self.producer is not None:
            self.producer.flush(2.0)
