"""``kafka-consumer-groups``: groups split partitions among members; every group gets every message (lessons 6, 7).

G consumer groups of M members each read one topic. Each member is its own confluent-kafka
consumer on its own thread; the timeline shows the assign and revoke callbacks and a
``rebalance`` summary per group whenever ownership settles. A member crash (``crash_at``
or the *Crash member* button) closes its consumer without committing: the group
rebalances and the handled-but-uncommitted messages reach another member again, marked
as duplicates — or, committing before processing, are never handled at all (lost). With
``idempotent`` an inbox per group turns every duplicate into a no-op.

End offsets come from the fetch side (the high watermark in fetch responses), committed
offsets from the commit responses, ownership from the clients' callbacks; see
``flows/kafka/offsets.py`` for why the broker's ListOffsets and DescribeGroups are not used.
"""

from __future__ import annotations

from typing import Any

from ..context import RunContext
from ..kafka.hands import SLOW_PARAMS, HandPublishing
from ..params import bool_param, choice_param, crash_within_messages, float_param, int_param
from ..registry import Workflow, action

TOPIC_LABEL = "orders"
GROUP_LABELS = ("billing", "shipping", "analytics", "audit")
JOIN_TIMEOUT_S = 40.0
# How long settling may go without a delivery to any group: enough for two cooperative rebalance
# rounds after a late crash.
SETTLE_TIMEOUT_S = 45.0
# A million messages: the ledger keeps a few bytes per offset (offset_tally.py), and a run that
# plans more than a person can follow samples its plain events (fidelity "auto").
MAX_MESSAGES = 1_000_000
# Records the producer's client may hold unsent (librdkafka's default: 100,000).
PRODUCER_QUEUE = 10_000
# Live members per group, at most (a member beyond the partition count only idles anyway).
MAX_MEMBERS = 8
GROUP_PARAMS = {"group": choice_param(GROUP_LABELS[0], GROUP_LABELS, "The consumer group (the run has the first "
                                      "'groups' of these)", label="Group")}


class KafkaConsumerGroups(HandPublishing, Workflow):
    slug = "kafka-consumer-groups"
    title = "Kafka consumer groups, rebalances and duplicates"
    pattern = "async"
    protocol = "kafka"
    broker = "kafka"
    lesson = (
        "A consumer group splits a topic's partitions among its members, and every group gets every message. "
        "Consuming is receive, handle, then commit the offset. When a member crashes between handling and "
        "committing, the group rebalances and another member gets those messages again: Kafka cannot "
        "guarantee exactly-once consumption, so consumers must be idempotent. Committing before handling "
        "instead loses the messages a crash interrupts."
    )
    params = {
        "partitions": int_param(4, 1, 32, "Partitions of the topic"),
        "keys": int_param(8, 1, 64, "Distinct message keys (round robin over the messages)"),
        "messages": int_param(40, 0, MAX_MESSAGES, "Messages to produce (0 with interactive: only what you publish)"),
        "rate": float_param(4.0, 0.0, 1000.0, "Messages per second (0 = as fast as possible)"),
        "groups": int_param(2, 1, len(GROUP_LABELS), "Consumer groups reading the topic (each gets every message)"),
        "members": int_param(2, 1, MAX_MEMBERS, "Members per group (a member without a partition stays idle)"),
        "commit_mode": choice_param("after", ("after", "before", "auto"),
                                    "after: commit after processing (at-least-once); before: commit before "
                                    "processing (at-most-once); auto: the client commits stored offsets every second",
                                    label="Commit mode"),
        "commit_every": int_param(5, 1, 100, "Messages a member handles per commit (its batch in 'before' mode)"),
        "strategy": choice_param("range", ("range", "roundrobin", "cooperative-sticky"),
                                 "Partition assignment strategy; cooperative-sticky revokes only what moves",
                                 label="Assignment strategy"),
        "crash_at": int_param(0, 0, MAX_MESSAGES, "member-1 of the first group crashes at its Nth message: after handling it, "
                                          "before committing (after, auto), or after committing it, before handling "
                                          "(before); 0 = never"),
        "idempotent": bool_param(False, "Idempotent consumers: an inbox per group suppresses duplicates"),
        "process_ms": int_param(50, 0, 2000, "Time a member spends handling one message (ms)"),
        "message_bytes": int_param(100, 32, 100_000, "Size of each message value in bytes"),
    }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        cleaned, errors = super().validate(given)
        crash_within_messages(cleaned, errors)  # member-1 handles at most every message of the run
        return cleaned, errors

    def expected(self, params: dict[str, Any]) -> int:
        return params["messages"] * params["groups"]

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        from ..kafka.clients import topic_name
        from ..kafka.crew import Crew
        from ..kafka.ledger import GroupLedger
        from ..kafka.member import MemberSettings
        from ..kafka.producer import KeyedProducer
        from ..kafka.teardown import create_run_topic

        p, ctx = self.p, self.ctx
        self.crew = None
        bootstrap = ctx.broker("kafka").bootstrap_servers
        self.topic = topic_name(ctx.namespace, TOPIC_LABEL)
        groups = {label: topic_name(ctx.namespace, label) for label in GROUP_LABELS[: p["groups"]]}
        # The topic and the groups are deleted when the run ends, their offsets kept in the result.
        create_run_topic(ctx.run_id, bootstrap, self.topic, p["partitions"], list(groups.values()))
        self.ledgers = [GroupLedger(ctx, label, group_id, self.topic, p["partitions"], p["strategy"])
                        for label, group_id in groups.items()]
        settings = MemberSettings(bootstrap=bootstrap, topic=self.topic, commit_mode=p["commit_mode"],
                                  commit_every=p["commit_every"], strategy=p["strategy"], process_ms=p["process_ms"],
                                  idempotent=p["idempotent"], plan=p["messages"], topic_label=TOPIC_LABEL)
        self.crew = Crew(ctx, self.ledgers, settings, p["members"], p["crash_at"])
        # The members are slower than the producer: the backlog waits in the broker, not in our process.
        self.producer = KeyedProducer(ctx, bootstrap, self.topic, TOPIC_LABEL, keys=p["keys"],
                                      message_bytes=p["message_bytes"],
                                      **{"queue.buffering.max.messages": PRODUCER_QUEUE})

    def start_consumers(self) -> None:
        self.crew.start()
        self.ctx.wait_until(self.crew.ready, JOIN_TIMEOUT_S, "every group's first partition assignment")

    def produce(self) -> None:
        self.producer.send_all(self.p["messages"], self.p["rate"], between=self.ctx.tend)
        self.producer.flush()
        self.produced = dict(self.producer.end_offsets)

    def settle(self) -> None:
        if self.p["interactive"]:
            # What was published by hand counts too; full speed again, so the backlog drains in time.
            self.producer.flush()
            self.produced = dict(self.producer.end_offsets)
            self.crew.unslow()
        crew, ends, count, ledgers = self.crew, self.produced, sum(self.produced.values()), self.ledgers
        # A big run's members may still be far behind the producer: the deadline is for standing still.
        self.ctx.wait_until(lambda: all(self._accounted(crew, ledger, ends, count) for ledger in ledgers),
                            SETTLE_TIMEOUT_S, "every group to handle (or, committing first, skip) every message",
                            progress=lambda: sum(ledger.deliveries.total for ledger in ledgers))
        crew.stop()

    def report(self) -> dict[str, Any]:
        return self._result(self.ctx, self.topic, self.producer, self.ledgers, self.crew, self.produced)

    def teardown(self) -> None:
        if self.crew is not None:
            self.crew.stop()

    # -- the crash button, and the crew's health whenever the run waits ----------------------

    @action("Crash member (at its next message, before commit)", target="member", picks=True)
    def on_crash(self, target: str) -> str:
        victim = self.crew.crash(target, "Crash member button")
        if victim is None:
            return f"no live member named {target}" if target else "no live member to crash"
        return f"{victim.actor} will crash at its next message, before commit"

    # -- by hand (Publish comes with HandPublishing) ----------------------------------------

    @action("Add a member", params=GROUP_PARAMS, hands_on=True)
    def on_add_member(self, target: str, group: str) -> str:
        if len(self.crew.alive(group)) >= MAX_MEMBERS:
            return f"not added: {group} has {MAX_MEMBERS} live members already"
        member = self.crew.add(group)
        return f"{member.actor} joins: the group rebalances"

    @action("Remove a member", params=GROUP_PARAMS, hands_on=True)
    def on_remove_member(self, target: str, group: str) -> str:
        member = self.crew.remove(group)
        if member is None:
            return f"not removed: {group} keeps its last live member"
        return f"{member.actor} commits what it handled and leaves: the group rebalances"

    @action("Slow a member", target="member", params=SLOW_PARAMS, hands_on=True)
    def on_slow(self, target: str, delay_ms: int) -> str:
        member = self.crew.slow(target, delay_ms)
        if member is None:
            return f"no live member named {target}"
        if not delay_ms:
            return f"{member.actor} back to full speed"
        return f"{member.actor} now spends {delay_ms} ms more on every message: watch its partitions' lag grow"

    @action("Restart a crashed member", target="member", picks=True, hands_on=True)
    def on_restart(self, target: str) -> str:
        live = self._restartable(target)
        if live:
            return f"not restarted: {live}"
        member = self.crew.restart(target)
        if member is None:
            return f"no crashed member named {target}" if target else "no crashed member to restart"
        return f"{member.actor} restarts under the same name and rejoins: the group rebalances"

    def menu(self) -> dict[str, dict[str, Any]]:
        """As declared, with the group choices narrowed to this run's groups."""
        menu = super().menu()
        ours = list(GROUP_LABELS[: getattr(self, "p", {}).get("groups", len(GROUP_LABELS))])
        for name in ("add_member", "remove_member"):
            if name in menu:
                menu[name]["params"]["group"].update(choices=ours, default=ours[0])
        return menu

    def check_action(self, name: str, target: str, params: dict[str, Any]) -> dict[str, str]:
        crew = getattr(self, "crew", None)
        group = params.get("group")
        if name in ("add_member", "remove_member") and crew is not None:
            if crew.ledger_of(group) is None:
                return {"group": f"no group {group} in this run; its groups: {', '.join(crew.members)}"}
            live = len(crew.alive(group))
            if name == "add_member" and live >= MAX_MEMBERS:
                return {"group": f"{group} has {live} live members, the most a group may have ({MAX_MEMBERS})"}
            if name == "remove_member" and live < 2:
                return {"group": f"{group} has one live member left; a group keeps it (crash it instead)"}
        if name == "restart" and crew is not None:
            why = self._restartable(target) if crew.crashed() else "no crashed member to restart"
            if why:
                return {"target": why}
        return super().check_action(name, target, params)

    def _restartable(self, target: str) -> str:
        """Why the crashed member ``target`` (or the last to crash) cannot come back now; '' if it can."""
        crashed = self.crew.crashed()
        named = target.removeprefix("group:")
        member = next((m for m in reversed(crashed) if not target or f"{m.ledger.label}/{m.member}" == named), None)
        if member is not None and len(self.crew.alive(member.ledger.label)) >= MAX_MEMBERS:
            return f"{member.ledger.label} has {MAX_MEMBERS} live members already"
        return ""

    def targets(self, action: str) -> list[str]:
        """Crashed members for restart; otherwise live members (for crash: not already about to crash)."""
        crew = getattr(self, "crew", None)
        if crew is None:
            return []
        if action == "restart":
            return [m.actor for m in crew.crashed()]
        return [m.actor for m in crew.all_members() if m.alive and not (action == "crash" and m.crash_pending)]

    def tick(self) -> None:
        super().tick()
        if getattr(self, "crew", None) is None:
            return
        self.crew.replace_missing()
        failed = self.crew.failed()
        if failed:
            raise RuntimeError(f"{failed[0].actor} failed; see its error event")

    @staticmethod
    def _accounted(crew: Any, ledger: Any, end_offsets: dict[int, int], produced: int) -> bool:
        if crew.settings.commit_mode == "before":
            # Committed past the end and nobody mid-batch: every message was handled or is lost for good.
            committed = ledger.committed
            return not crew.busy(ledger.label) and all(committed.get(p, 0) >= end for p, end in end_offsets.items())
        return len(ledger.processed) >= produced

    # -- the result ------------------------------------------------------------------------

    @staticmethod
    def _result(ctx: RunContext, topic: str, producer: Any, ledgers: list[Any], crew: Any,
                produced: dict[int, int]) -> dict[str, Any]:
        from ..kafka.offsets import topic_figures

        groups = [ledger.result(produced) for ledger in ledgers]
        ends: dict[str, int] = {}
        for group in groups:
            for partition, end in group["end_offsets"].items():
                ends[partition] = max(end, ends.get(partition, 0))
        p = ctx.params
        return {
            # End offsets: the high watermarks the members saw, and what the delivery reports confirmed.
            **topic_figures(topic, p["partitions"], ends, producer.end_offsets),
            "commit_mode": p["commit_mode"],
            "strategy": p["strategy"],
            "produced": sum(produced.values()),
            "groups": groups,
            "members": {
                label: [{"member": m.member, "state": m.state, "handled": m.done, "partitions": m.final_partitions}
                        for m in members]
                for label, members in crew.members.items()
            },
            "duplicates": sum(g["duplicates"] for g in groups),
            "lost": sum(g["lost"] for g in groups),
        }
