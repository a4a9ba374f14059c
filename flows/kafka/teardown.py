"""A run's Kafka topic and consumer groups, deleted when the run ends (see ``flows.run_resources``).

Tansu keeps every record in memory until its topic is deleted, so a topic per run that is
never deleted grows the broker by the size of every message ever sent. Before deleting,
the broker's own figures are read for the summary: each partition's end offset (from a
fresh fetch, see ``offsets.py``) and each group's committed offsets (OffsetFetch). Groups
go first: with the topic gone their committed offsets would be gone too.
"""

from __future__ import annotations

from typing import Any

from .. import run_resources

# A broker that does not answer this fast is taken for dead: the run's end is not held up
# by every later step timing out in turn (and a dead embedded broker kept nothing anyway).
PROBE_S = 2.0


class RunTopic:
    key = "kafka"

    def __init__(self, bootstrap: str, topic: str, partitions: int, groups: list[str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.groups = list(groups or [])
        self.created = False
        self.unreachable = ""

    def capture(self, timeout: float) -> dict[str, Any]:
        from .clients import admin_client
        from .offsets import fetch_committed, fetch_end_offsets

        try:
            admin_client(self.bootstrap).list_topics(timeout=min(timeout, PROBE_S))
        except Exception as exc:  # noqa: BLE001 - KafkaException carries the reason
            self.unreachable = f"Kafka at {self.bootstrap} did not answer: {exc}"
            raise ConnectionError(self.unreachable) from None
        figures: dict[str, Any] = {"topic": self.topic, "groups": list(self.groups)}
        if not self.created:  # nothing to read; still deleted, in case creation got half-way
            return figures
        ends = fetch_end_offsets(self.bootstrap, self.topic, self.partitions, timeout=timeout)
        figures["end_offsets"] = {str(p): end for p, end in sorted(ends.items())}
        figures["committed"] = {
            group: {str(p): off for p, off in sorted(fetch_committed(self.bootstrap, group, self.topic, timeout).items())}
            for group in self.groups}
        return figures

    def delete(self, timeout: float) -> None:
        from .clients import delete_groups, delete_topics

        if self.unreachable:
            raise ConnectionError(f"nothing deleted: {self.unreachable}")

        delete_groups(self.bootstrap, self.groups, timeout=timeout)
        delete_topics(self.bootstrap, [self.topic], timeout=timeout)


def create_run_topic(run_id: int, bootstrap: str, topic: str, partitions: int,
                     groups: list[str] | None = None) -> RunTopic:
    """Create the run's topic, registered for deletion (with ``groups``) when the run ends."""
    from .clients import create_topic

    resource = RunTopic(bootstrap, topic, partitions, groups)
    run_resources.track(run_id, resource)  # before creating: a half-made topic is deleted too
    create_topic(bootstrap, topic, partitions)
    resource.created = True
    return resource
