"""What every redelivering workflow promises the message inspector: a duplicate names its cause.

The crash, revoke or lost ack that brings a message back lists it in ``attrs.message_ids``,
and the duplicate delivery points at that event with ``attrs.cause_seq``.
"""

from __future__ import annotations


def duplicates_name_their_cause(events: list[dict], kinds: tuple[str, ...] = ("crash", "revoke")) -> list[dict]:
    """The duplicate deliveries, each checked to link an earlier ``kinds`` event that lists its message."""
    by_seq = {e["seq"]: e for e in events}
    duplicates = [e for e in events if e["kind"] == "deliver" and e["duplicate"]]
    for delivery in duplicates:
        cause = by_seq.get(delivery["attrs"].get("cause_seq"))
        assert cause is not None, f"duplicate {delivery['message_id']} (seq {delivery['seq']}) names no cause"
        assert cause["kind"] in kinds and cause["seq"] < delivery["seq"], (cause, delivery)
        assert delivery["message_id"] in cause["attrs"]["message_ids"], (cause, delivery)
    return duplicates
