"""A crashed member's replacement (or its restart) joins only once the crashed consumer has left the group.

Tansu never completes a JoinGroup that reached it while a member it waits on was still in
the group, even when that member leaves a moment later (``test_kafka_tansu_quirks.py``). The
crew replaces a crashed member on the run thread's next tick, which can come while the
crashed consumer is still closing: a million-message run lost that race now and then, and
its replacement waited without partitions until settling timed out.
"""

from __future__ import annotations

import threading

import pytest

from flows.context import RunContext
from flows.kafka import crew as crew_module
from flows.kafka.crew import Crew
from flows.kafka.ledger import GroupLedger
from flows.kafka.member import Member, MemberSettings
from flows.recorder import Recorder

from .test_kafka_member_hot_path import COMMIT_EVERY, FakeConsumer, Keep, records

CRASH_AT = 3


class Joining:
    """A replacement as the crew spawns it, without a thread or a consumer: it only says it joined."""

    joined: list[int] = []

    def __init__(self, ctx, ledger, settings, number, crash_at=0, how="") -> None:
        self.number, self.state, self.alive, self.leaving, self.left = number, "starting", True, False, threading.Event()
        Joining.joined.append(number)

    def start(self) -> None:
        pass


class ClosingConsumer(FakeConsumer):
    """Its close() is where the member leaves the group; the run thread may act meanwhile."""

    def __init__(self, meanwhile) -> None:
        super().__init__()
        self.meanwhile = meanwhile
        self.joined_while_closing: list[int] | None = None

    def close(self) -> None:
        self.meanwhile()
        self.joined_while_closing = list(Joining.joined)


@pytest.fixture
def crew(monkeypatch) -> Crew:
    monkeypatch.setattr(crew_module, "Member", Joining)
    Joining.joined = []
    ctx = RunContext(1, {}, Recorder(1, Keep(), max_pending=10**9))
    ledger = GroupLedger(ctx, "billing", "g", "t", 2, "range")
    settings = MemberSettings("bootstrap", "t", "after", COMMIT_EVERY, "range", 0, False, plan=1_000)
    return Crew(ctx, [ledger], settings, members=1, crash_at=CRASH_AT)


def crashing_member(crew: Crew, meanwhile) -> tuple[Member, ClosingConsumer]:
    member = Member(crew.ctx, crew.ledgers[0], crew.settings, 1, crash_at=CRASH_AT)
    consumer = member._consumer = ClosingConsumer(meanwhile)
    crew.members["billing"].append(member)
    return member, consumer


def test_the_replacement_joins_after_the_crashed_member_has_left_not_while_it_leaves(crew: Crew) -> None:
    member, consumer = crashing_member(crew, crew.replace_missing)  # a tick while the consumer closes

    assert member._handle_batch(records(1, 5)) is True  # crashed at its CRASH_AT-th message

    assert consumer.joined_while_closing == []  # nobody joined while member-1 was still in the group
    assert member.state == "crashed" and crew.ledgers[0].crashes[0]["handled"] == CRASH_AT
    crew.replace_missing()  # the next tick, after the leave
    assert Joining.joined == [2]


def meanwhile(action: threading.Thread):
    def act() -> None:
        action.start()  # the action, on the run thread, while the member's consumer closes
        action.join(0.2)  # bounded: the newcomer must not get through while that consumer is open
    return act


def test_a_restart_asked_for_while_the_crashed_member_leaves_waits_for_the_leave(crew: Crew) -> None:
    restarting = threading.Thread(target=crew.restart, args=("billing/member-1",))
    member, consumer = crashing_member(crew, meanwhile(restarting))
    assert member._handle_batch(records(1, 5)) is True

    assert consumer.joined_while_closing == []
    restarting.join(5)
    assert Joining.joined == [1]  # back under its name, once member-1 had left


def test_a_member_added_while_another_leaves_by_hand_joins_after_the_leave(crew: Crew) -> None:
    adding = threading.Thread(target=crew.add, args=("billing",))
    member, consumer = crashing_member(crew, meanwhile(adding))
    member.request_leave()
    member._loop()  # sees the request at once: commits, says it stopped, closes its consumer

    assert member.state == "stopped" and consumer.joined_while_closing == []
    adding.join(5)
    assert len(Joining.joined) == 1
