"""The AMQP lane: publish with a confirm, one consumer that acks after the work.

The caller publishes each order to the durable queue ``<namespace>.orders`` (through the
default exchange, persistent) and waits only for the broker's publisher confirm: that
wait is its perceived latency. The embedded broker (kombu's memory transport) has no
confirms; it stores the message before ``publish`` returns, so there the caller waits for
the hand-over alone (``confirmed`` says which on every ``publish``).

The fulfilment service is one consumer on its own connection and thread
(``flows.amqp.consumers.QueueConsumer``): manual ack, prefetch 1, the ack after the work
returned. When the fulfilment crashes the handling, the consumer drops its connection
without acking, as a killed process would, and reconnects at once: the broker requeues
the message with ``redelivered`` set and delivers it again, a duplicate. The outage cancels
the consumer (the order being handled finishes and is acked first); what the broker had
pushed but the handler never started goes back to the queue without being counted as a
delivery, and a new consumer takes up the backlog when the outage ends.

``backlog`` is the queue's ready messages as the broker reports them (a passive
``queue.declare``): RabbitMQ's own count, the memory transport's queue size embedded.
"""

from __future__ import annotations

from typing import Any

from ..lane import CallFailed, HandlingCrashed, Lane

CONSUMER = "consumer:amqp"
REDELIVERED = "delivered again (the broker set redelivered)"
DELIVERED_AGAIN = "delivered again"
START_TIMEOUT_S = 10.0
STOP_MARGIN_S = 5.0  # beyond one handling's work, for the consumer to cancel and close


class AmqpLane(Lane):
    protocol = "amqp"
    sync = False
    broker = "amqp"
    backlog_actor = "queue:amqp.orders"
    backlog_source = "ready messages in the queue (passive queue.declare)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.orders: Any = None  # the queue, a BrokerQueue
        self.publisher: Any = None
        self.consumer: Any = None

    # -- setup and teardown ---------------------------------------------------------------

    def setup(self) -> None:
        from kombu import Producer, Queue

        from ...amqp.resources import QUEUE_EXPIRES_MS
        from .broker_queue import BrokerQueue

        self.amqp = self.ctx.broker("amqp")
        self.confirms = not self.amqp.embedded
        name = f"{self.ctx.namespace}.orders"
        self.queue = Queue(name, routing_key=name, durable=True, auto_delete=False,
                           queue_arguments={"x-expires": QUEUE_EXPIRES_MS})
        self.orders = BrokerQueue(self.amqp, self.queue)
        self.orders.declare()
        self.publisher = self.amqp.connection(confirm=True)
        self.producer = Producer(self.publisher.channel())

    def teardown(self) -> None:
        self.stop_downstream()
        try:
            if self.orders is not None:
                self.orders.delete()
        finally:
            if self.publisher is not None:
                self.publisher.release()

    # -- the caller -------------------------------------------------------------------------

    def hand_over(self, order: str) -> dict[str, Any]:
        try:
            self.producer.publish({"id": order}, routing_key=self.queue.name, delivery_mode=2, serializer="json",
                                  message_id=order, retry=False)
        except (self.publisher.connection_errors + self.publisher.channel_errors) as exc:
            raise CallFailed(f"the broker refused the publish: {exc}") from exc
        return {"queue": self.queue.name, "confirmed": self.confirms}

    # -- the fulfilment service --------------------------------------------------------------

    def start_downstream(self) -> None:
        from ...amqp.consumers import QueueConsumer

        # restart_after_s=0: a consumer that crashed a handling reconnects at once.
        consumer = QueueConsumer(self.amqp, self.queue, "amqp", self._handle, prefetch=1, restart_after_s=0.0)
        consumer.start()
        self.ctx.wait_until(consumer.ready.is_set, START_TIMEOUT_S, "the AMQP consumer to subscribe",
                            wake=consumer.ready, tend=False)
        if consumer.error is not None:
            raise RuntimeError(f"the AMQP consumer could not subscribe: {consumer.error}")
        self.consumer = consumer

    def stop_downstream(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            consumer.stop()
            consumer.join(self.fulfilment.work_s + STOP_MARGIN_S)

    def _handle(self, consumer: Any, message: Any) -> None:
        if consumer.stopping.is_set():
            # Pushed while the consumer was being cancelled: never handled, so not a delivery
            # here; left unacked, it goes back to the queue when the connection closes.
            return
        order = message.payload["id"]
        redelivered = bool(message.delivery_info.get("redelivered"))
        try:
            self.fulfil(order, CONSUMER, REDELIVERED if redelivered else DELIVERED_AGAIN, queue=self.queue.name,
                        redelivered=redelivered)
        except HandlingCrashed as crashed:
            consumer.crash(str(crashed))  # drops the connection: no ack, the broker requeues it
        message.ack()
        attempt = self.ledger.attempts_of(self.protocol, order)
        self.emit("ack", CONSUMER, order, attempt, attempt > 1, queue=self.queue.name)

    # -- what the broker says -------------------------------------------------------------

    def backlog(self) -> int | None:
        return self.orders.depth() if self.orders is not None else None

    def broker_counts(self) -> dict[str, Any]:
        return {**self.orders.counts(), "confirms": self.confirms}
