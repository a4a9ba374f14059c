"""One plain sentence per lane, from its figures: what its callers felt and what became of the orders."""

from __future__ import annotations

from typing import Any

LABELS = {"http": "HTTP", "grpc": "gRPC", "celery": "Celery", "amqp": "AMQP", "kafka": "Kafka", "mqtt": "MQTT"}


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def verdict(protocol: str, figures: dict[str, Any], sync: bool, orders: int, outage: bool,
            drained_ms: float | None = None) -> str:
    """E.g. "HTTP: callers waited 104 ms, the whole work; 6 failed during the outage; 14 of 20 completed"."""
    label = LABELS.get(protocol, protocol)
    waited = figures["perceived"]["p50"]
    parts: list[str] = []
    if sync:
        parts.append(f"callers waited {_ms(waited)}, the whole work")
        if figures["errors"]:
            parts.append(f"{_plural(figures['errors'], 'call')} failed" + (" during the outage" if outage else ""))
        if figures["retries"]:
            parts.append(f"{_plural(figures['retries'], 'retry', 'retries')} after the handler crashed")
        parts.append(_completed(figures, orders))
        return f"{label}: " + "; ".join(parts)
    parts.append(f"callers waited {_ms(waited)}")
    parts.append(f"{figures['lost']} lost")
    if figures["errors"]:
        parts.append(f"{_plural(figures['errors'], 'hand-over')} failed")
    backlog = f"backlog peaked at {figures['backlog_max']}"
    if outage and drained_ms is not None:
        backlog += f", drained {drained_ms / 1000:.1f} s after recovery"
    parts.append(backlog)
    if figures["duplicates"]:
        parts.append(f"{_plural(figures['duplicates'], 'duplicate')} delivered")
    parts.append(_completed(figures, orders))
    e2e = figures["end_to_end"]["p50"]
    if e2e is not None:
        parts.append(f"end to end {_ms(e2e)}")
    return f"{label}: " + "; ".join(parts)


def _completed(figures: dict[str, Any], orders: int) -> str:
    done = figures["completed"]
    return f"all {orders} completed" if done == orders else f"{done} of {orders} completed"
