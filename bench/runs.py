"""Running a product workflow from a benchmark, exactly as the API would start it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def run_workflow(slug: str, given: dict[str, Any], timeout: float,
                 problem: Callable[[dict[str, Any]], str] = lambda result: "") -> tuple[Any, float]:
    """Validate ``given``, run ``slug`` to the end; return (the finished Run, wall seconds).

    A run that does not succeed raises, and so does one whose result ``problem`` finds
    something wrong with (it returns what, or ""): a benchmark figure from such a run means nothing.
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
    wrong = problem(finished.result)
    if wrong:
        raise RuntimeError(f"{slug} run {run.pk}: {wrong}")
    return finished, wall
