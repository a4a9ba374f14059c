"""The embedded AMQP broker: kombu's ``memory://`` transport, made faithful where lessons need it.

kombu's in-process transport is an emulation, and three of its shortcuts would teach the
wrong thing, so this subclass behaves like RabbitMQ instead:

* **Crash before ack.** kombu's memory channel drops unacknowledged messages when a
  consumer's connection goes away (``do_restore = False``). A broker requeues them and sets
  ``redelivered``; without that, lesson 7 (duplicates after a crash) could not happen
  embedded. Requeued messages go back to the queue they came from, at its head, as
  RabbitMQ does, rather than being routed through the exchange again.
* **Topic ``#`` matches zero words.** kombu translates ``#`` to ``.*?`` between dots, so
  ``order.#`` does not match ``order``; AMQP says it does.
* **``mandatory``.** A message no binding matches is handed to the publisher's
  ``on_return`` callbacks (``312 NO_ROUTE``) instead of vanishing silently.

Headers exchanges are **not** implemented (kombu's virtual transports have no headers
exchange type); the AMQP workflows refuse them embedded and say so, and a test pins it.

Use it with ``kombu.Connection("memory://", transport=TRANSPORT_PATH)``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from queue import Queue
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import memory, virtual
from kombu.transport.virtual.exchange import STANDARD_EXCHANGE_TYPES, TopicExchange

TRANSPORT_PATH = "flows.amqp.memory:Transport"
NO_ROUTE = (312, "NO_ROUTE")
QUEUE_KEY = "x-flows-queue"  # which queue a stored copy sits in, so a requeue goes back there


class AmqpTopicExchange(TopicExchange):
    """Topic routing with AMQP's ``#`` (zero or more words) and ``*`` (exactly one word).

    Both sides get a leading dot, so every word is ``.word``: ``*`` is one ``\\.[^.]*`` and
    ``#`` any number of them, including none. The empty key has no words (RabbitMQ's reading).
    """

    _compiled: dict[str, re.Pattern[str]] = {}

    def key_to_pattern(self, rkey: str) -> str:
        if not rkey:  # the empty key is no words at all, as in RabbitMQ
            return "^$"
        parts = []
        for word in rkey.split("."):
            if word == "#":
                parts.append(r"(?:\.[^.]*)*")
            elif word == "*":
                parts.append(r"\.[^.]*")
            else:
                parts.append(r"\." + re.escape(word))
        return "^" + "".join(parts) + "$"

    def _match(self, pattern: str, string: str) -> Any:
        compiled = self._compiled.get(pattern)
        if compiled is None:
            compiled = self._compiled[pattern] = re.compile(pattern)
        return compiled.match("." + string if string else "")


EXCHANGE_TYPES = {**STANDARD_EXCHANGE_TYPES, "topic": AmqpTopicExchange}


class ReturnedMessage(ChannelError):
    """What ``on_return`` callbacks receive, shaped like py-amqp's ``Basic.return``."""


class Channel(memory.Channel):
    do_restore = True
    # Separate from plain memory:// so nothing else in the process shares these queues.
    queues: dict[str, Queue] = {}

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        # kombu's memory channel keeps ``events`` on the class: every producer's on_return
        # would be called for every channel's returns. One set per channel, as in py-amqp.
        self.events = defaultdict(set)
        self.exchange_types = {name: cls(self) for name, cls in EXCHANGE_TYPES.items()}

    # -- storage: one copy per queue, stamped with the queue it sits in ------------------

    def _put(self, queue: str, message: dict, **kwargs: Any) -> None:
        self._queue_for(queue).put(_copy_for(queue, message))

    def _put_fanout(self, exchange: str, message: dict, routing_key: str | None = None, **kwargs: Any) -> None:
        for queue in self._lookup(exchange, routing_key):
            self._put(queue, message)

    def _restore(self, message: Any) -> None:
        raw = message.serializable()
        props = raw["properties"]
        queue = props["delivery_info"].get(QUEUE_KEY)
        if queue is None:  # published before this transport stamped copies: fall back to kombu
            return super()._restore(message)
        raw = _copy_for(queue, raw)
        raw["redelivered"] = True
        raw["properties"]["delivery_info"]["redelivered"] = True
        q = self._queue_for(queue)
        with q.mutex:  # back at the head, where the broker requeues it
            q.queue.appendleft(raw)
            q.unfinished_tasks += 1
            q.not_empty.notify()

    def _restore_at_beginning(self, message: Any) -> None:
        self._restore(message)

    # -- mandatory -------------------------------------------------------------------

    def basic_publish(self, message: dict, exchange: str, routing_key: str, **kwargs: Any) -> Any:
        if exchange and kwargs.get("mandatory") and not self._lookup(exchange, routing_key):
            self._inplace_augment_message(message, exchange, routing_key)
            returned = self.Message(message, channel=self)
            error = ReturnedMessage(f"Basic.return: ({NO_ROUTE[0]}) {NO_ROUTE[1]}", reply_code=NO_ROUTE[0])
            for callback in list(self.events["basic_return"]):
                callback(error, exchange, routing_key, returned)
            return None
        return super().basic_publish(message, exchange, routing_key, **kwargs)

    # -- deletion that forgets queues without bindings too ---------------------------

    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False, **kwargs: Any) -> Any:
        if if_empty and self._size(queue):
            return None
        super().queue_delete(queue, if_unused=if_unused, if_empty=if_empty, **kwargs)
        type(self).queues.pop(queue, None)
        return None

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        type(self).queues.pop(queue, None)

    def _queue_for(self, queue: str) -> Queue:
        queues = type(self).queues  # close() rebinds self.queues; the broker's queues live on
        if queue not in queues:
            queues[queue] = Queue()
        return queues[queue]

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return queue in type(self).queues

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        self._queue_for(queue)

    def _get(self, queue: str, timeout: float | None = None) -> dict:
        return self._queue_for(queue).get(block=False)

    def _size(self, queue: str) -> int:
        return self._queue_for(queue).qsize()

    def _purge(self, queue: str) -> int:
        q = self._queue_for(queue)
        with q.mutex:
            size = len(q.queue)
            q.queue.clear()
        return size


def _copy_for(queue: str, message: dict) -> dict:
    props = message.get("properties", {})
    info = dict(props.get("delivery_info", {}))
    info[QUEUE_KEY] = queue
    return {**message, "properties": {**props, "delivery_info": info}}


class Transport(memory.Transport):
    Channel = Channel
    global_state = virtual.BrokerState()
    driver_name = "memory (flows)"

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.state = self.global_state
