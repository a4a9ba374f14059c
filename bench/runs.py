"""Running a product workflow from a benchmark, exactly as the API would start it."""

from __future__ import annotations

import time
from typing import Any


def run_workflow(slug: str, given: dict[str, Any], timeout: float) -> tuple[Any, float]:
    """Validate ``given``, run ``slug`` to the end; return (the finished Run, wall seconds).

    A run that does not succeed raises: a benchmark figure from a failed run means nothing.
    """
    from flows import registry
    from flows.runner import get_runner, wait_until_finished

    params, errors = registry.get(slug).validate(given)
    if errors:
        raise ValueError(f"{slug} parameters: {errors}")
    started = time.perf_counter()
    run = get_runner().start(slug, params)
    finished = wait_until_finished(run.pk, timeout=timeout)
    wall = time.perf_counter() - started
    if finished.state != "succeeded":
        raise RuntimeError(f"{slug} run {run.pk} {finished.state}: {finished.error}")
    return finished, wall
