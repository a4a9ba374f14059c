"""One consumer group seen as one logical consumer: what it was given, what it did, who owned what.

Members of a group call in from their own threads; every method takes the ledger's lock
and does only bookkeeping, so events are emitted outside it.

*Duplicates* are counted per group (the logical consumer of ``flows.ledger``): a second
delivery of the same (partition, offset) to any member of the group, kept per partition in
compact tallies (``offset_tally.py``) so a long run does not hold an object per message.

*Ownership* is rebuilt from the members' assign and revoke callbacks (the broker's
DescribeGroups is not trusted for it: the embedded Tansu build lists no members); whenever
every partition has an owner again and something changed, the ledger summarises the
rebalance: which partitions moved from whom to whom, and how many partitions members that
stayed in the group had to give up on the way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..context import RunContext
from ..ledger import Delivery
from .offset_tally import OffsetHolders, OffsetTally
from .offsets import lag

DUPLICATE_REASON = "uncommitted offset after rebalance"
_FIRST = Delivery(1)  # every first delivery is alike: one object for all of them


class GroupLedger:
    def __init__(self, ctx: RunContext, label: str, group_id: str, topic: str, partitions: int, strategy: str) -> None:
        self.ctx = ctx
        self.label = label
        self.group_id = group_id
        self.topic = topic
        self.partitions = partitions
        self.strategy = strategy
        self.actor = f"group:{label}"
        self._lock = threading.Lock()
        # Attempts per (partition, offset) for this one group, and who held each last.
        self.deliveries = OffsetTally()
        self._holders = OffsetHolders()
        # Why the next delivery of an offset is a duplicate: the event (crash, revoke) that will cause it.
        self._causes_of: dict[tuple[int, int], int] = {}
        self.processed = OffsetTally()
        self.effects = 0
        self.committed: dict[int, int] = {}
        self.end_offsets: dict[int, int] = {}  # fetch side: high watermarks the members saw
        self.owners: dict[int, str] = {}
        self._stable: dict[int, str] = {}
        self._revoked_from_stayers = 0
        self._causes: list[str] = []
        self.rebalances: list[dict[str, Any]] = []
        self.crashes: list[dict[str, Any]] = []
        self.crashed_members: set[str] = set()
        self.quiet = False  # shutting down: members leaving is not a rebalance worth showing

    # -- messages ---------------------------------------------------------------------

    def delivered(self, partition: int, offset: int, member: str, end_offset: int | None) -> Delivery:
        """Count one delivery of (partition, offset) to ``member``: the group's first, or a duplicate and why."""
        with self._lock:
            attempt = self.deliveries.add(partition, offset)
            previous = self._holders.swap(partition, offset, member)
            if end_offset is not None and end_offset > self.end_offsets.get(partition, -1):
                self.end_offsets[partition] = end_offset
            if attempt == 1:
                return _FIRST
            cause = self._causes_of.pop((partition, offset), None)
        return Delivery(attempt, DUPLICATE_REASON, previous, None, cause)

    def caused_by(self, offset: tuple[int, int], seq: int) -> None:
        """The next delivery of ``offset`` happens because of the event ``seq`` (the first cause noted wins:
        a crashed member's partitions are also revoked on the way out)."""
        if seq:
            with self._lock:
                self._causes_of.setdefault(offset, seq)

    def crashed_member(self, member: str | None) -> bool:
        with self._lock:
            return member in self.crashed_members

    def processed_one(self, partition: int, offset: int, effect: bool) -> None:
        with self._lock:
            self.processed.add(partition, offset)
            if effect:
                self.effects += 1

    def committed_by(self, offsets: Mapping[int, int]) -> None:
        # The broker keeps the last commit per partition, so the ledger does too.
        with self._lock:
            self.committed.update(offsets)

    def saw_end_offsets(self, ends: Mapping[int, int]) -> None:
        with self._lock:
            for partition, end in ends.items():
                if end > self.end_offsets.get(partition, -1):
                    self.end_offsets[partition] = end

    # -- membership -------------------------------------------------------------------

    def joined(self, member: str, how: str = "") -> None:
        with self._lock:
            if how == "restarted":
                # Back under its old name: what it gives up from now on is not a crashed member's.
                self.crashed_members.discard(member)
            self._causes.append({"restarted": f"{member} restarted and rejoined",
                                 "added by hand": f"{member} joined (added by hand)"}.get(how, f"{member} joined"))

    def left(self, member: str) -> None:
        with self._lock:
            self._causes.append(f"{member} left (removed by hand)")

    def crashed(self, member: str, record: dict[str, Any]) -> None:
        with self._lock:
            self.crashed_members.add(member)
            self.crashes.append(record)
            self._causes.append(f"{member} crashed")

    def assigned(self, member: str, partitions: Iterable[int]) -> None:
        with self._lock:
            for partition in partitions:
                self.owners[partition] = member
            summary = self._settle()
        if summary is not None:
            self.ctx.emit("rebalance", self.actor, **summary)

    def revoked(self, member: str, partitions: Iterable[int], stays: bool) -> None:
        with self._lock:
            for partition in partitions:
                if self.owners.get(partition) == member:
                    del self.owners[partition]
                if stays:
                    self._revoked_from_stayers += 1

    def all_owned(self) -> bool:
        with self._lock:
            return len(self.owners) == self.partitions

    def _settle(self) -> dict[str, Any] | None:
        """A rebalance summary once every partition has an owner again and something changed."""
        if self.quiet or len(self.owners) < self.partitions:
            return None
        if self.owners == self._stable and not self._revoked_from_stayers and not self._causes:
            return None
        moved = [{"partition": p, "from": self._stable.get(p), "to": m}
                 for p, m in sorted(self.owners.items()) if self._stable.get(p) != m]
        owners: dict[str, list[int]] = {}
        for partition, member in sorted(self.owners.items()):
            owners.setdefault(member, []).append(partition)
        summary = {
            "group": self.label,
            "group_id": self.group_id,
            "strategy": self.strategy,
            "rebalance": len(self.rebalances) + 1,
            "cause": "; ".join(self._causes) or "group membership changed",
            "moved": moved,
            "partitions": [m["partition"] for m in moved],
            "members": sorted({m[k] for m in moved for k in ("from", "to") if m[k]}),
            "kept": self.partitions - len(moved),
            # Partitions taken away from members that stayed in the group: eager strategies
            # (range, roundrobin) revoke everything; cooperative-sticky only what moves.
            "revoked": self._revoked_from_stayers,
            "owners": owners,
        }
        self.rebalances.append({**summary, "at_ms": round(self.ctx.elapsed_ms(), 3)})
        self._stable = dict(self.owners)
        self._revoked_from_stayers = 0
        self._causes = []
        return summary

    # -- the end ----------------------------------------------------------------------

    def result(self, produced: Mapping[int, int]) -> dict[str, Any]:
        """The group's figures; ``produced``: per partition, the end offset of what the run produced
        (offsets are dense from 0, so every offset below it holds one of the run's messages)."""
        with self._lock:
            lost = [(p, o) for p in sorted(produced) for o in self.processed.never(p, produced[p])]
            ends = {p: self.end_offsets[p] for p in sorted(self.end_offsets)}
            committed = {p: self.committed[p] for p in sorted(self.committed)}
            repeated = list(self.deliveries.more_than_once())
            return {
                "group": self.label,
                "group_id": self.group_id,
                "delivered": self.deliveries.total,
                "processed": self.processed.total,
                "unique_processed": len(self.processed),
                "duplicates": sum(n - 1 for _o, n in repeated),
                "duplicate_offsets": [[p, o] for (p, o), _n in repeated],
                "effects": self.effects,
                "lost": len(lost),
                "lost_offsets": [list(o) for o in lost],
                "committed": {str(p): o for p, o in committed.items()},
                "end_offsets": {str(p): o for p, o in ends.items()},
                "lag": {str(p): n for p, n in lag(ends, committed).items()},
                "rebalances": list(self.rebalances),
                "crashes": list(self.crashes),
            }
