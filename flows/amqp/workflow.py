"""What every AMQP workflow does around its own lesson: the connections, the run's
topology (exchange and queues, deleted at the end) and the queue consumers."""

from __future__ import annotations

from typing import Any

from ..registry import Workflow
from .consumers import QueueConsumer, wait_until_consuming


class AmqpWorkflow(Workflow):
    protocol = "amqp"
    broker = "amqp"
    # Set by ``declare``; the defaults let ``teardown`` run after a setup that failed early.
    admin: Any = None
    publisher: Any = None
    topology: Any = None
    consumers: list[QueueConsumer] = []

    def declare(self, amqp: Any, topology: Any) -> None:
        """Open the admin and (confirming) publisher connections and declare ``topology``."""
        self.amqp, self.consumers = amqp, []
        self.admin = amqp.connection()
        self.publisher = amqp.connection(confirm=True)
        self.channel = self.admin.channel()
        self.topology = topology
        topology.declare(self.channel)

    def consume(self, queue: str, name: str, handler: Any, **options: Any) -> None:
        consumer = QueueConsumer(self.amqp, self.topology.queues[queue], name, handler, logical=queue, **options)
        self.consumers.append(consumer)
        consumer.start()

    def consuming(self) -> None:
        """Wait until every consumer is subscribed (recording each assignment)."""
        wait_until_consuming(self.ctx, self.consumers)

    def halt_consumers(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        for consumer in self.consumers:
            consumer.join(5.0)

    def stop_consumers(self) -> None:
        """Stop them, then say which failed: not crashed on purpose, beside the lost count."""
        self.halt_consumers()
        for consumer in self.consumers:
            if consumer.error is not None:
                self.ctx.emit("error", f"consumer:{consumer.name}", queue=consumer.logical, consumer=consumer.name,
                              reason=f"{type(consumer.error).__name__}: {consumer.error}")

    def teardown(self) -> None:
        from .resources import delete_and_release

        self.halt_consumers()
        delete_and_release(self.topology, self.admin, self.publisher)
