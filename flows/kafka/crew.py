"""Every member of every consumer group in a run: start them, crash one, replace the last one standing, stop.

By hand, a member can also be added, removed (it leaves cleanly), restarted after a crash
(under the same name), or slowed; the workflow bounds how many a group may have live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from ..context import RunContext
from .ledger import GroupLedger
from .member import Member, MemberSettings

STOP_TIMEOUT_S = 20.0
# How long a newcomer waits for a crashed member's consumer to leave the group (a close takes
# milliseconds; it is bounded by librdkafka's own timeouts when the broker does not answer).
LEAVE_WAIT_S = 10.0
# A cancelled run (timed out, cancelled, its broker dead) waits this long for all members at most;
# a member stuck in a call to a dead broker is a daemon thread and ends on its own.
CANCELLED_STOP_S = 3.0


class Crew:
    def __init__(self, ctx: RunContext, ledgers: Sequence[GroupLedger], settings: MemberSettings, members: int,
                 crash_at: int = 0) -> None:
        self.ctx = ctx
        self.ledgers = list(ledgers)
        self.settings = settings
        self.size = members
        self.crash_at = crash_at
        self.members: dict[str, list[Member]] = {ledger.label: [] for ledger in self.ledgers}
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        for index, ledger in enumerate(self.ledgers):
            for number in range(1, self.size + 1):
                # crash_at applies to one member only: member-1 of the first group.
                self._spawn(ledger, number, self.crash_at if index == 0 and number == 1 else 0)

    def _spawn(self, ledger: GroupLedger, number: int, crash_at: int = 0, how: str = "") -> Member:
        member = Member(self.ctx, ledger, self.settings, number, crash_at, how)
        with self._lock:
            group = self.members[ledger.label]
            # A restarted member takes its crashed namesake's place, so each name is listed once.
            group[:] = [m for m in group if m.number != number]
            group.append(member)
        member.start()
        return member

    def ledger_of(self, label: str) -> GroupLedger | None:
        return next((ledger for ledger in self.ledgers if ledger.label == label), None)

    # -- state --------------------------------------------------------------------------

    def alive(self, label: str) -> list[Member]:
        with self._lock:
            return [m for m in self.members[label] if m.alive]

    def all_members(self) -> list[Member]:
        with self._lock:
            return [m for group in self.members.values() for m in group]

    def ready(self) -> bool:
        """Every member has had its first assignment and every group owns every partition."""
        return all(m.assign_calls > 0 for m in self.all_members() if m.alive) and all(
            ledger.all_owned() for ledger in self.ledgers)

    def crashed(self) -> list[Member]:
        return [m for m in self.all_members() if m.state == "crashed"]

    def busy(self, label: str) -> bool:
        return any(m.busy for m in self.alive(label))

    def failed(self) -> list[Member]:
        return [m for m in self.all_members() if m.state == "failed"]

    # -- faults -------------------------------------------------------------------------

    def crash(self, target: str, reason: str) -> Member | None:
        """Crash the member ``target`` names (``group:<g>/member-<n>`` or ``<g>/member-<n>``).

        Without a target: in the first group, the live member holding the most handled but
        uncommitted messages (then the most partitions), so the crash shows its effect.
        """
        victim = self._find(target) if target else self._default_victim()
        if victim is None:
            self.ctx.emit("error", "runner", reason=f"no live member to crash{f' named {target}' if target else ''}")
            return None
        victim.request_crash(reason)
        return victim

    def _find(self, target: str, alive: bool = True) -> Member | None:
        wanted = target.removeprefix("group:")
        for member in self.all_members():
            if member.alive is alive and f"{member.ledger.label}/{member.member}" == wanted:
                return member
        return None

    # -- by hand ------------------------------------------------------------------------

    def add(self, label: str) -> Member:
        """A new member joins ``label``, under the lowest number no live or crashed member holds."""
        ledger = self.ledger_of(label)
        assert ledger is not None, label  # the workflow checked the group
        with self._lock:
            taken = {m.number for m in self.members[label] if m.state != "stopped"}
        self._after_leavers(label)
        return self._spawn(ledger, min(set(range(1, len(taken) + 2)) - taken), how="added by hand")

    def remove(self, label: str) -> Member | None:
        """The group's newest live member leaves cleanly (commits, then leaves); None if it has one only."""
        live = [m for m in self.alive(label) if not m.crash_pending]
        if len(self.alive(label)) < 2 or not live:
            return None
        leaving = max(live, key=lambda m: m.number)
        leaving.request_leave()
        return leaving

    def restart(self, target: str) -> Member | None:
        """A crashed member (``target``, or the last to crash) comes back under its name and rejoins."""
        crashed = self.crashed()
        victim = self._find(target, alive=False) if target else (crashed[-1] if crashed else None)
        if victim is None or victim.state != "crashed":
            return None
        self._after_leavers(victim.ledger.label)
        return self._spawn(victim.ledger, victim.number, how="restarted")

    def slow(self, target: str, delay_ms: int) -> Member | None:
        member = self._find(target)
        if member is not None:
            member.delay_ms = delay_ms
        return member

    def unslow(self) -> None:
        for member in self.all_members():
            member.delay_ms = 0

    def _after_leavers(self, label: str) -> None:
        """Wait (bounded) until the members of ``label`` on their way out have left: see replace_missing."""
        deadline = time.monotonic() + LEAVE_WAIT_S
        with self._lock:
            leaving = [m for m in self.members[label] if m.leaving]
        for member in leaving:
            member.left.wait(max(0.0, deadline - time.monotonic()))

    def _default_victim(self) -> Member | None:
        for ledger in self.ledgers:
            candidates = [m for m in self.alive(ledger.label) if not m.crash_pending]
            if candidates:
                return max(candidates, key=lambda m: (m.uncommitted, len(m.assigned), -m.number))
        return None

    def replace_missing(self) -> None:
        """A group whose last member crashed gets a new member, so its partitions are consumed again.

        Only once the crashed member's consumer has left the group: Tansu never completes a
        JoinGroup that reached it while a member it waits on was still in the group, even when
        that member leaves a moment later (``test_kafka_tansu_quirks.py``), so a newcomer that
        joins during the crashed consumer's close would wait without partitions for minutes.
        """
        if self._stopping:
            return
        for ledger in self.ledgers:
            with self._lock:
                group = self.members[ledger.label]
                if any(m.alive or not m.left.is_set() for m in group):
                    continue
                number = max(m.number for m in group) + 1 if group else 1
            if not any(m.state == "failed" for m in group):
                self._spawn(ledger, number)

    # -- the end --------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._stopping = True
        for ledger in self.ledgers:
            ledger.quiet = True
        members = self.all_members()
        for member in members:
            member.request_stop()
        deadline = time.monotonic() + (min(timeout, CANCELLED_STOP_S) if self.ctx.cancelled.is_set() else timeout)
        for member in members:
            member.join(max(0.0, deadline - time.monotonic()))
