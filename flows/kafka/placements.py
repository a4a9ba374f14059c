"""Where the broker stored each of a run's messages, by message number, in two flat arrays.

A dict entry per message costs about a hundred bytes; at a million messages that alone
is more memory than the whole run may grow by. Message numbers are dense from 1 (see
``producer.message_id``), so a slot per number holds the partition and the offset.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

_UNPLACED = -1  # partition slot of a message with no successful delivery report (yet)
_NO_OFFSET = -1  # offset slot under acks=0: the report carries no offset
_GROWTH = 4096


class Placements:
    """``message id → (partition, offset or None)`` for every message the broker confirmed."""

    def __init__(self) -> None:
        self._partitions = array("i")
        self._offsets = array("q")
        self._count = 0

    @staticmethod
    def _number(message_id: str) -> int:
        return int(message_id[2:])  # "m-<n>"

    def put(self, message_id: str, partition: int, offset: int | None) -> None:
        self.put_number(self._number(message_id), partition, offset)

    def put_number(self, n: int, partition: int, offset: int | None) -> None:
        """``put`` by message number (a hot path that holds the number already)."""
        partitions = self._partitions
        if n >= len(partitions):
            more = max(n + 1 - len(partitions), len(partitions), _GROWTH)
            partitions.extend(array("i", [_UNPLACED]) * more)
            self._offsets.extend(array("q", [_NO_OFFSET]) * more)
        if partitions[n] == _UNPLACED:
            self._count += 1
        partitions[n] = partition
        self._offsets[n] = _NO_OFFSET if offset is None else offset

    def get(self, message_id: str) -> tuple[int, int | None] | None:
        n = self._number(message_id)
        if n >= len(self._partitions) or self._partitions[n] == _UNPLACED:
            return None
        offset = self._offsets[n]
        return self._partitions[n], None if offset == _NO_OFFSET else offset

    def __contains__(self, message_id: object) -> bool:
        return isinstance(message_id, str) and self.get(message_id) is not None

    def __getitem__(self, message_id: str) -> tuple[int, int | None]:
        placed = self.get(message_id)
        if placed is None:
            raise KeyError(message_id)
        return placed

    def __len__(self) -> int:
        return self._count

    def values(self) -> Iterator[tuple[int, int | None]]:
        """(partition, offset or None) of every placed message, by message number."""
        for partition, offset in zip(self._partitions, self._offsets):
            if partition != _UNPLACED:
                yield partition, None if offset == _NO_OFFSET else offset
