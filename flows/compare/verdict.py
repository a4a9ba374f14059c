"""One plain sentence per lane, from its figures: what its callers felt and what became of the orders."""

from __future__ import annotations

from typing import Any

LABELS = {"http": "HTTP", "grpc": "gRPC", "celery": "Celery", "amqp": "AMQP", "kafka": "Kafka", "mqtt": "MQTT"}
REASONS_SAID = 2  # the commonest reasons a verdict names


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _of(n: int, orders: int, what: str) -> str:
    return f"all {orders} {what}" if n == orders else f"{n} of {orders} {what}"


def _failures(figures: dict[str, Any], noun: str, outage: bool) -> str:
    reasons = list(figures.get("error_reasons") or {})[:REASONS_SAID]
    said = f"{_plural(figures['errors'], noun)} failed" + (" during the outage" if outage else "")
    return said + (f" ({'; '.join(reasons)})" if reasons else "")


def verdict(protocol: str, figures: dict[str, Any], sync: bool, orders: int, outage: bool,
            drained_ms: float | None = None) -> str:
    """E.g. "HTTP: callers waited 103 ms for the whole work; 11 calls failed during the outage
    (connection refused); 9 of 20 answered", or "Kafka: callers waited 3 ms; 0 lost; backlog
    peaked at 22, drained 1.4 s after recovery; all 20 completed; end to end 900 ms"."""
    label = LABELS.get(protocol, protocol)
    parts: list[str] = []
    if sync:
        # The wait of the calls that got an answer: a call refused at once is no measure of the work.
        answered_wait = figures["end_to_end"]["p50"]
        parts.append(f"callers waited {_ms(answered_wait)} for the whole work" if answered_wait is not None
                     else f"no call was answered; callers waited {_ms(figures['perceived']['p50'] or 0)}")
        if figures["errors"]:
            parts.append(_failures(figures, "call", outage))
        if figures["retries"]:
            parts.append(f"{_plural(figures['retries'], 'retry', 'retries')} after the handler crashed")
        parts.append(_of(figures["accepted"], orders, "answered"))
        unanswered_work = figures["completed"] - figures["accepted"]
        if unanswered_work > 0:
            parts.append(f"the server finished {unanswered_work} its callers had given up on")
        return f"{label}: " + "; ".join(parts)
    waited = figures["perceived"]["p50"]
    parts.append(f"callers waited {_ms(waited)}" if waited is not None else "no order was placed")
    parts.append(f"{figures['lost']} lost")
    if figures["errors"]:
        parts.append(_failures(figures, "hand-over", outage))
    backlog = f"backlog peaked at {figures['backlog_max']}"
    if outage and drained_ms is not None:
        backlog += f", drained {drained_ms / 1000:.1f} s after recovery"
    parts.append(backlog)
    if figures["duplicates"]:
        parts.append(f"{_plural(figures['duplicates'], 'duplicate')} delivered")
    parts.append(_of(figures["completed"], orders, "completed"))
    if figures["end_to_end"]["p50"] is not None:
        parts.append(f"end to end {_ms(figures['end_to_end']['p50'])}")
    return f"{label}: " + "; ".join(parts)
