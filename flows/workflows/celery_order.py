"""``celery-order``: being written (placeholder so the registry resolves)."""

from __future__ import annotations

from typing import Any

from ..context import RunContext
from ..registry import Workflow


class CeleryOrder(Workflow):
    slug = "celery-order"
    title = "celery-order"
    pattern = "async"
    protocol = "celery"
    broker = "amqp"
    lesson = ""

    def run(self, ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError("celery-order is not finished yet")
