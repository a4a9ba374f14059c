"""The group ledger's compact tallies: exact counts and holders per (partition, offset)."""

from __future__ import annotations

from flows.kafka.ledger import DUPLICATE_REASON, GroupLedger
from flows.kafka.offset_tally import OffsetHolders, OffsetTally


def test_the_tally_counts_exactly_and_lists_every_repeat():
    tally = OffsetTally()
    assert [tally.add(0, 3), tally.add(0, 3), tally.add(1, 5000), tally.add(0, 0)] == [1, 2, 1, 1]
    assert tally.total == 4 and len(tally) == 3
    assert (0, 3) in tally and (0, 1) not in tally and (2, 0) not in tally and (1, 6000) not in tally
    assert list(tally.more_than_once()) == [((0, 3), 2)]


def test_counts_beyond_a_byte_stay_exact():
    tally = OffsetTally()
    for _ in range(300):
        last = tally.add(2, 7)
    assert last == 300 and tally.count(2, 7) == 300 and tally.total == 300 and len(tally) == 1
    assert list(tally.more_than_once()) == [((2, 7), 300)]


def test_holders_say_who_had_an_offset_before():
    holders = OffsetHolders()
    assert holders.swap(0, 4, "member-1") is None
    assert holders.swap(0, 4, "member-2") == "member-1"
    assert holders.swap(0, 5, "member-2") is None


class Ctx:
    def emit(self, *args, **kwargs) -> int:
        return 1

    def elapsed_ms(self) -> float:
        return 0.0


def test_a_redelivered_offset_is_a_duplicate_with_its_holder_reason_and_cause():
    ledger = GroupLedger(Ctx(), "billing", "g", "t", 2, "range")
    first = ledger.delivered(1, 0, "member-1", 3)
    assert first.attempt == 1 and not first.duplicate and first.previous is None
    ledger.caused_by((1, 0), 42)
    ledger.caused_by((1, 0), 43)  # the first cause noted wins
    again = ledger.delivered(1, 0, "member-2", 3)
    assert (again.attempt, again.reason, again.previous, again.cause_seq) == (2, DUPLICATE_REASON, "member-1", 42)
    ledger.processed_one(1, 0, True)
    ledger.processed_one(1, 0, True)
    result = ledger.result({1: 2})  # partition 1 holds offsets 0 and 1
    assert result["delivered"] == 2 and result["duplicates"] == 1 and result["duplicate_offsets"] == [[1, 0]]
    assert result["processed"] == 2 and result["unique_processed"] == 1 and result["lost_offsets"] == [[1, 1]]
    assert result["end_offsets"] == {"1": 3}
