"""A consumer-group member's batch path without a broker: what it records, counts and commits.

A sampling run counts the plain deliveries and processings of messages outside the sample
per batch (no attrs built for them), and still records every duplicate one by one with
its reason; a full run records every message as before. The ledger counts all of them.
"""

from __future__ import annotations

from flows.context import RunContext
from flows.fidelity import Fidelity
from flows.kafka.ledger import DUPLICATE_REASON, GroupLedger
from flows.kafka.member import Member, MemberSettings
from flows.kafka.producer import Payload, encode, key_names, plan
from flows.recorder import FIELDS, Recorder
from flows.summary import SummaryBuilder

from .kafka_support import FakeRecord

PARTITIONS = 2
COMMIT_EVERY = 10


class Keep:
    """A pipeline stand-in: the test takes the events itself."""

    def wake(self, recorder: Recorder) -> None:
        pass


class Committed:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset, self.error = "t", partition, offset, None


class FakeConsumer:
    """Answers what a member asks of its consumer: cached watermarks and synchronous commits."""

    def __init__(self) -> None:
        self.commits: list[dict[int, int]] = []

    def get_watermark_offsets(self, tp, cached=True):
        return 0, 1_000

    def commit(self, offsets, asynchronous=False):
        self.commits.append({tp.partition: tp.offset for tp in offsets})
        return [Committed(tp.partition, tp.offset) for tp in offsets]

    def close(self) -> None:
        pass


def records(first: int, last: int) -> list[FakeRecord]:
    """Messages first..last, round robin over the partitions, offsets dense per partition."""
    keys = key_names(4)
    out = []
    for n in range(first, last + 1):
        mid, key, seq = plan(n, keys)
        out.append(FakeRecord(encode(Payload(mid, key, seq, 0.0), 100), (n - 1) % PARTITIONS, (n - 1) // PARTITIONS))
    return out


def member_of(ledger: GroupLedger, ctx: RunContext, number: int) -> Member:
    settings = MemberSettings("bootstrap", "t", "after", COMMIT_EVERY, "range", 0, False, plan=1_000)
    member = Member(ctx, ledger, settings, number)
    member._consumer = FakeConsumer()
    return member


def crash_and_redeliver(fidelity: Fidelity) -> tuple[dict, list[dict], GroupLedger]:
    """member-1 handles 205 messages and crashes before committing the last 5; member-2 gets them again."""
    recorder = Recorder(1, Keep(), max_pending=10**9, fidelity=fidelity)
    ctx = RunContext(1, {}, recorder)
    ledger = GroupLedger(ctx, "billing", "g", "t", PARTITIONS, "range")
    first, second = member_of(ledger, ctx, 1), member_of(ledger, ctx, 2)
    batch = records(1, 205)
    for start in range(0, len(batch), 50):
        first._handle_batch(batch[start:start + 50])
    assert first.uncommitted == 5
    first.request_crash("test")
    first._crash([])
    second._handle_batch(records(201, 205))
    recorder.emit("done", "runner", attrs={"state": "succeeded", "lost": 0}, last=True)
    events = [dict(zip(FIELDS, e)) for e in recorder.take()]
    return SummaryBuilder().feed_all(events).snapshot(), events, ledger


def duplicates_in(events: list[dict]) -> dict[tuple[str, str], tuple]:
    """Per (kind, message): where, why, from whom, and the kind of the event that caused it."""
    kind_at = {e["seq"]: e["kind"] for e in events}
    return {(e["kind"], e["message_id"]): (e["attrs"]["partition"], e["attrs"]["offset"], e["attrs"]["reason"],
                                          e["attrs"].get("previous_member"), kind_at.get(e["attrs"].get("cause_seq")))
            for e in events if e["duplicate"]}


def test_a_sampling_member_counts_plain_messages_per_batch_and_records_every_duplicate():
    sampled = Fidelity("sampled")
    sampled.every = 10**9  # nothing in the sample: every plain event must be counted
    summary, events, ledger = crash_and_redeliver(sampled)
    full_summary, full_events, full_ledger = crash_and_redeliver(Fidelity("full"))

    # The full run records a deliver and a process per delivery; the sampled one only the duplicates.
    assert len([e for e in full_events if e["kind"] == "deliver"]) == 210
    assert {e["kind"] for e in events if e["kind"] in ("deliver", "process") and not e["duplicate"]} == set()
    dups = duplicates_in(events)
    assert dups == duplicates_in(full_events)
    offsets = {(p, o) for p, o, *_ in dups.values()}
    assert offsets == {((n - 1) % PARTITIONS, (n - 1) // PARTITIONS) for n in range(201, 206)}
    assert {(reason, previous, cause) for _p, _o, reason, previous, cause in dups.values()} == {
        (DUPLICATE_REASON, "member-1", "crash")}
    # Counts are exact in both modes and agree with the ledger.
    for counted, group in ((summary, ledger), (full_summary, full_ledger)):
        counts = counted["counts"]
        assert counts["delivered"] == counts["processed"] == group.deliveries.total == 210
        assert counts["duplicates"] == group.result({0: 103, 1: 102})["duplicates"] == 5
    # Per-partition deliver edges: what was delivered from each partition, duplicates recorded apart.
    edges: dict[tuple[str, str], int] = {}
    for flow in (e for e in events if e["kind"] == "flow"):
        for edge in flow["attrs"]["edges"]:
            edges[edge["from"], edge["kind"]] = edges.get((edge["from"], edge["kind"]), 0) + edge["count"]
    assert edges[("topic:orders/p0", "deliver")] + edges[("topic:orders/p1", "deliver")] == 205
    # Commits happen as in full mode: every COMMIT_EVERY handled messages, recorded one by one.
    assert [e["attrs"]["offsets"] for e in events if e["kind"] == "commit"] == \
        [e["attrs"]["offsets"] for e in full_events if e["kind"] == "commit"]


def test_lost_offsets_come_from_the_tally_without_a_list_of_what_was_produced():
    ledger = GroupLedger(RunContext(1, {}, Recorder(1, Keep())), "billing", "g", "t", 2, "range")
    for offset in (0, 1, 3):
        ledger.processed_one(0, offset, True)
    result = ledger.result({0: 6, 1: 2})
    assert result["lost_offsets"] == [[0, 2], [0, 4], [0, 5], [1, 0], [1, 1]] and result["lost"] == 5
