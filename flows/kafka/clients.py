"""confluent-kafka client settings and topic administration, the same for Tansu and Apache Kafka.

Why these values:

* ``session.timeout.ms`` 6000 is Apache Kafka's default ``group.min.session.timeout.ms``,
  so Kafka 4 accepts it; Tansu holds a JoinGroup for half the session timeout, so a join
  costs ~3 s there instead of the ~23 s librdkafka's default 45 s would cost.
* ``partitioner`` ``murmur2_random``: keys land where the Java client would put them.
* ``fetch.wait.max.ms`` 20: Kafka answers a waiting fetch as soon as records arrive; Tansu
  first looks again about half-way through the wait, so librdkafka's 500 ms default would
  add up to a quarter second to every message's end-to-end time there (pinned in
  ``flows/tests/test_kafka_tansu_quirks.py``).
* ``queued.max.messages.kbytes`` 4096 in every group consumer (librdkafka's default is 64 MB
  per consumer): a member takes a commit's worth of records at a time, and at a million
  messages the default prefetch of every member of every group was most of the run's memory.
* ``enable.auto.offset.store`` false in every group consumer: the member decides which
  offsets are "done" (after processing), including in auto-commit mode, where librdkafka
  then commits the stored offsets on its timer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
AUTO_COMMIT_INTERVAL_MS = 1000
FETCH_WAIT_MAX_MS = 20
PREFETCH_KB = 4096
PARTITIONER = "murmur2_random"
ACKS = ("0", "1", "all")
STRATEGIES = ("range", "roundrobin", "cooperative-sticky")

_client_log = logging.getLogger("flows.kafka.client")

# Connection chatter (an idle connection closed by the broker, a broker stopped at the end of
# a test) is not news; real errors still reach the error callbacks and the log.
_QUIET = {"log.connection.close": False, "logger": _client_log}


def topic_name(namespace: str, label: str) -> str:
    """Per-run names, so runs never share a topic or a group's committed offsets."""
    return f"flows.{namespace}.{label}"


def producer_config(bootstrap: str, *, acks: str = "all", idempotent: bool = False, client_id: str = "flows-producer",
                    **extra: Any) -> dict[str, Any]:
    if idempotent and acks != "all":
        raise ValueError("the idempotent producer needs acks=all")
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "partitioner": PARTITIONER,
        "acks": acks,
        "enable.idempotence": idempotent,
        **_QUIET,
        **extra,
    }


def group_consumer_config(bootstrap: str, group_id: str, *, strategy: str = "range", auto_commit: bool = False,
                          client_id: str = "flows-member", **extra: Any) -> dict[str, Any]:
    """A consumer-group member; commits are explicit unless ``auto_commit``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"assignment strategy must be one of {', '.join(STRATEGIES)}")
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "partition.assignment.strategy": strategy,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        "enable.auto.commit": auto_commit,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": AUTO_COMMIT_INTERVAL_MS,
        "queued.max.messages.kbytes": PREFETCH_KB,
        **_QUIET,
        **extra,
    }


def reader_config(bootstrap: str, group_id: str, client_id: str = "flows-reader", **extra: Any) -> dict[str, Any]:
    """A consumer that reads partitions it assigns itself: no group join, no commits.

    librdkafka insists on a ``group.id`` even then; it is never joined.
    """
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        **_QUIET,
        **extra,
    }


def poll_batch(consumer: Any, max_messages: int, timeout: float) -> list[Any]:
    """Up to ``max_messages`` that are already there, waiting up to ``timeout`` only for the first.

    ``Consumer.consume(n, timeout)`` waits for all n or the whole timeout, which at a slow
    rate would hold each message back for the full timeout.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_messages <= 1:
        return [first]
    return [first, *consumer.consume(num_messages=max_messages - 1, timeout=0)]


def admin_client(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, **_QUIET})


def create_topic(bootstrap: str, name: str, partitions: int, timeout: float = 10.0) -> None:
    """Create ``name`` with exactly ``partitions`` partitions and wait until metadata shows them all.

    Producing to an unknown topic would auto-create it with the broker's default count.
    """
    import time

    from confluent_kafka.admin import NewTopic

    admin = admin_client(bootstrap)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(name, timeout=timeout).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {name} did not show {partitions} partitions within {timeout:g} s")
        time.sleep(0.05)  # metadata propagation has no event to wait on


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 5.0) -> None:
    """Delete the topics; one that does not exist (any more) is not an error."""
    from confluent_kafka import KafkaError, KafkaException

    names = list(names)
    if not names:
        return
    admin = admin_client(bootstrap)  # held: futures never resolve once their client is gone
    futures = admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def delete_groups(bootstrap: str, group_ids: Iterable[str], timeout: float = 5.0) -> None:
    """Delete consumer groups (and their committed offsets); an unknown group is not an error.

    Apache Kafka refuses a group that still has members (``NON_EMPTY_GROUP``) until the
    members' LeaveGroup (or session timeout) is through, so that answer is retried until
    ``timeout``. Tansu deletes a group with members at once (pinned in
    ``flows/tests/test_kafka_tansu_quirks.py``).
    """
    import time

    from confluent_kafka import KafkaError, KafkaException

    pending = list(group_ids)
    if not pending:
        return
    admin = admin_client(bootstrap)  # held, as above
    deadline = time.monotonic() + timeout
    while pending:
        futures = admin.delete_consumer_groups(pending, request_timeout=max(0.5, deadline - time.monotonic()))
        busy = []
        for group_id, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.NON_EMPTY_GROUP and time.monotonic() < deadline:
                    busy.append(group_id)
                elif code != KafkaError.GROUP_ID_NOT_FOUND:
                    raise
        pending = busy
        if pending:
            time.sleep(0.2)  # the broker has no event to wait on for a member's departure
