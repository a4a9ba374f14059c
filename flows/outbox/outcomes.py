"""What became of each order, from the database and what the consumer saw: pure, so the
workflow's result, the tests and the browser (``static/js/panels/outbox.js``) agree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

OK, LOST, PHANTOM, SUPPRESSED = "ok", "lost", "phantom", "duplicate-suppressed"


def outcome(stored: bool, effects: int, suppressed: int) -> str:
    """One order: stored in the service's table or not, its effects applied and suppressed by the consumer.

    lost: the order exists and no message ever reached the consumer; phantom: the consumer
    acted on a message for an order the service never stored; duplicate-suppressed: a
    second delivery came and the inbox kept its effect from happening again.
    """
    if not stored:
        return PHANTOM if effects + suppressed else LOST
    if not effects + suppressed:
        return LOST
    return SUPPRESSED if suppressed else OK


def outcomes(orders: Iterable[str], stored: set[str], effects: Mapping[str, int],
             suppressed: Mapping[str, int]) -> dict[str, str]:
    return {order: outcome(order in stored, effects.get(order, 0), suppressed.get(order, 0)) for order in orders}
