"""The producer's record of where each message landed, kept in flat arrays by message number."""

from __future__ import annotations

import pytest

from flows.kafka.placements import Placements


def test_placements_answer_like_the_dict_they_replace():
    placed = Placements()
    placed.put("m-2", 1, 7)
    placed.put("m-9000", 0, None)  # acks=0: no offset; far beyond the first block
    assert len(placed) == 2
    assert "m-2" in placed and "m-9000" in placed and "m-1" not in placed and "m-9001" not in placed
    assert placed["m-2"] == (1, 7) and placed["m-9000"] == (0, None) and placed.get("m-3") is None
    with pytest.raises(KeyError):
        placed["m-1"]
    assert list(placed.values()) == [(1, 7), (0, None)]


def test_a_second_report_for_the_same_message_is_not_counted_twice():
    placed = Placements()
    placed.put("m-1", 0, 0)
    placed.put("m-1", 0, 0)
    assert len(placed) == 1
