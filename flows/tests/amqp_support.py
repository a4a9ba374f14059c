"""Shared by the AMQP and Celery tests: one broker mode per test class, finished runs as data."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

RUN_TIMEOUT_S = 90.0


@dataclass
class Finished:
    summary: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def result(self) -> dict[str, Any]:
        return self.summary["result"]

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]

    def of(self, kind: str, actor_prefix: str = "") -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind and e["actor"].startswith(actor_prefix)]


class BrokerModeClass:
    """Subclasses set ``mode``: ``embedded`` (in-process) or ``external`` (RabbitMQ, required in CI).

    ``on_stack`` names inherited tests that this class runs again under ``make test-external``
    (``-m stack``: PostgreSQL and channels-redis), marked here without marking the contract's
    own function, which every other mode's class shares.
    """

    mode = ""
    on_stack: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.__dict__.get("on_stack", ()):
            setattr(cls, name, pytest.mark.stack(_again(getattr(cls, name))))

    @pytest.fixture(autouse=True)
    def amqp_broker(self, broker_mode, request):  # pytest fixtures
        if self.mode == "external":
            return broker_mode("amqp", "external", request.getfixturevalue("rabbitmq_url"))
        return broker_mode("amqp", "embedded")


def _again(test: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(test)
    def again(self: Any) -> None:
        test(self)

    return again


def run_workflow(slug: str, timeout: float = RUN_TIMEOUT_S, **given: Any) -> Finished:
    from flows import eventstore, registry
    from flows.runner import get_runner, wait_until_finished

    params, errors = registry.get(slug).validate(given)
    assert not errors, errors
    run = get_runner().start(slug, params)
    run = wait_until_finished(run.pk, timeout)
    summary = get_runner().summary(run.pk)
    assert summary["state"] == "succeeded", summary["error"]
    return Finished(summary, eventstore.read_events(run.pk, after=0, limit=100000))
