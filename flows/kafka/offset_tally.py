"""Per-partition tallies by offset: a byte per offset instead of a dict entry per message.

A group's ledger asks, for every (partition, offset), how often it was delivered or
processed and which member held it last. Offsets are dense from 0 in every partition of
a run's topic (nothing is compacted or deleted while the run lasts), so a partition's
tally is a ``bytearray`` indexed by offset: a million messages cost a megabyte, not the
hundred or so a dict would. Counts past 254 (never seen in practice) continue exactly in
a side dict.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

_SATURATED = 255


def _grown(lane: bytearray | array, offset: int, blank: bytes | array) -> None:
    missing = offset + 1 - len(lane)
    if missing > 0:
        lane.extend(blank * max(missing, len(lane), 1024))


class OffsetTally:
    """How many times each (partition, offset) was counted; exact, not a sample."""

    def __init__(self) -> None:
        self._lanes: dict[int, bytearray] = {}
        self._beyond: dict[tuple[int, int], int] = {}  # counts of 255 and more
        self.total = 0
        self.distinct = 0

    def add(self, partition: int, offset: int) -> int:
        """Count one more for (partition, offset); the count it has now."""
        lane = self._lanes.get(partition)
        if lane is None:
            lane = self._lanes[partition] = bytearray()
        if offset >= len(lane):
            _grown(lane, offset, b"\0")
        self.total += 1
        n = lane[offset]
        if n < _SATURATED - 1:
            lane[offset] = n + 1
            if not n:
                self.distinct += 1
            return n + 1
        lane[offset] = _SATURATED
        count = self._beyond[(partition, offset)] = self._beyond.get((partition, offset), _SATURATED - 1) + 1
        return count

    def count(self, partition: int, offset: int) -> int:
        lane = self._lanes.get(partition)
        if lane is None or offset >= len(lane):
            return 0
        n = lane[offset]
        return self._beyond[(partition, offset)] if n == _SATURATED else n

    def __contains__(self, key: tuple[int, int]) -> bool:
        return self.count(*key) > 0

    def __len__(self) -> int:
        return self.distinct

    def never(self, partition: int, end: int) -> Iterator[int]:
        """The offsets of ``partition`` below ``end`` never counted, in order (the zero bytes, found in C)."""
        lane = self._lanes.get(partition, bytearray())
        offset = lane.find(0, 0, end)
        while offset >= 0:
            yield offset
            offset = lane.find(0, offset + 1, end)
        yield from range(min(len(lane), end), end)

    def more_than_once(self) -> Iterator[tuple[tuple[int, int], int]]:
        """((partition, offset), count) of every offset counted twice or more, by partition and offset."""
        for partition in sorted(self._lanes):
            repeats = self._lanes[partition].translate(_REPEATS)  # 1 where counted twice or more; found in C
            offset = repeats.find(1)
            while offset >= 0:
                yield (partition, offset), self.count(partition, offset)
                offset = repeats.find(1, offset + 1)


_REPEATS = bytes([0, 0] + [1] * 254)


class OffsetHolders:
    """Which member holds each (partition, offset) last: a two-byte member number per offset."""

    def __init__(self) -> None:
        self._lanes: dict[int, array] = {}
        self._names: list[str] = [""]  # number 0: nobody yet
        self._numbers: dict[str, int] = {}

    def swap(self, partition: int, offset: int, member: str) -> str | None:
        """Hand (partition, offset) to ``member``; who held it before (None: nobody)."""
        number = self._numbers.get(member)
        if number is None:
            number = self._numbers[member] = len(self._names)
            self._names.append(member)
        lane = self._lanes.get(partition)
        if lane is None:
            lane = self._lanes[partition] = array("H")
        if offset >= len(lane):
            _grown(lane, offset, array("H", [0]))
        before = lane[offset]
        lane[offset] = number
        return self._names[before] if before else None
