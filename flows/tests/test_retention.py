"""Run retention: old finished runs go with their events and inbox rows; live runs never do.

Marked ``stack``: the same tests run on PostgreSQL in ``make test-external``.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from flows import retention
from flows.models import Event, InboxEntry, Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

EVENTS_PER_RUN = 1200
CHUNK = 500  # smaller than a run's events, so every run is deleted in several chunks


def make_run(state: str, events: int = EVENTS_PER_RUN, finished_days_ago: float | None = 0.0) -> Run:
    now = timezone.now()
    live = state in Run.LIVE_STATES
    finished_at = None if live or finished_days_ago is None else now - timedelta(days=finished_days_ago)
    run = Run.objects.create(workflow="http-crud", state=state, finished_at=finished_at)
    Event.objects.bulk_create(
        [Event(run=run, seq=seq, t_ms=float(seq), kind="publish", actor="producer", message_id=f"m{seq}")
         for seq in range(1, events + 1)], batch_size=1000)
    InboxEntry.objects.create(run=run, consumer="work", message_id="m1")
    return run


def remaining() -> set[int]:
    return set(Run.objects.values_list("id", flat=True))


def test_prune_keeps_the_newest_finished_runs_and_every_live_one() -> None:
    live_old = [make_run(Run.State.RUNNING), make_run(Run.State.PENDING)]
    finished = [make_run(state) for state in (Run.State.SUCCEEDED, Run.State.FAILED, Run.State.CANCELLED,
                                              Run.State.SUCCEEDED, Run.State.SUCCEEDED, Run.State.FAILED)]
    kept, doomed = finished[-3:], finished[:-3]

    report = retention.prune(keep=3, days=0, chunk=CHUNK)

    assert sorted(report.runs) == sorted(r.pk for r in doomed)
    assert report.events == len(doomed) * EVENTS_PER_RUN and report.inbox == len(doomed)
    assert remaining() == {r.pk for r in live_old + kept}
    assert not Event.objects.filter(run_id__in=[r.pk for r in doomed]).exists()
    assert not InboxEntry.objects.filter(run_id__in=[r.pk for r in doomed]).exists()
    for run in live_old + kept:  # untouched, every event still there
        assert Event.objects.filter(run=run).count() == EVENTS_PER_RUN


def test_prune_by_age_spares_recent_and_live_runs() -> None:
    old = make_run(Run.State.SUCCEEDED, finished_days_ago=40)
    orphan = make_run(Run.State.FAILED, finished_days_ago=None)  # failed before it was stamped
    Run.objects.filter(pk=orphan.pk).update(created_at=timezone.now() - timedelta(days=40))
    recent = make_run(Run.State.SUCCEEDED, finished_days_ago=2)
    live = make_run(Run.State.RUNNING)
    Run.objects.filter(pk=live.pk).update(created_at=timezone.now() - timedelta(days=90))

    report = retention.prune(keep=0, days=30, chunk=CHUNK)

    assert sorted(report.runs) == sorted([old.pk, orphan.pk])
    assert remaining() == {recent.pk, live.pk}
    assert Event.objects.count() == 2 * EVENTS_PER_RUN


def test_pruneruns_dry_run_deletes_nothing_then_the_command_deletes() -> None:
    runs = [make_run(Run.State.SUCCEEDED) for _ in range(4)]
    out = io.StringIO()
    call_command("pruneruns", "--keep", "1", "--days", "0", "--dry-run", stdout=out)
    assert f"would delete 3 runs, {3 * EVENTS_PER_RUN} events and 3 inbox entries" in out.getvalue()
    assert remaining() == {r.pk for r in runs} and Event.objects.count() == 4 * EVENTS_PER_RUN

    out = io.StringIO()
    call_command("pruneruns", "--keep", "1", "--days", "0", stdout=out)
    assert f"deleted 3 runs, {3 * EVENTS_PER_RUN} events" in out.getvalue()
    assert remaining() == {runs[-1].pk} and Event.objects.count() == EVENTS_PER_RUN


def test_pruneruns_defaults_come_from_the_settings(settings) -> None:
    settings.FLOWS_KEEP_RUNS, settings.FLOWS_KEEP_DAYS = 2, 0
    runs = [make_run(Run.State.SUCCEEDED, events=3) for _ in range(3)]
    call_command("pruneruns", stdout=io.StringIO())
    assert remaining() == {r.pk for r in runs[1:]}


@pytest.mark.parametrize("args", [["--keep", "-1"], ["--days", "-2"]])
def test_pruneruns_refuses_negative_limits(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("pruneruns", *args, stdout=io.StringIO())


def test_a_finished_run_triggers_a_background_prune_at_most_once_per_interval(settings, monkeypatch) -> None:
    from flows.runner import get_runner, wait_until_finished

    settings.FLOWS_KEEP_RUNS, settings.FLOWS_KEEP_DAYS, settings.FLOWS_PRUNE_EVERY_S = 1, 0, 3600
    monkeypatch.setattr(retention, "_last_started", float("-inf"))
    older = [make_run(Run.State.SUCCEEDED, events=10) for _ in range(3)]
    started = []
    real = retention.prune_soon

    def spy() -> object:
        thread = real()
        started.append(thread)
        return thread

    monkeypatch.setattr(retention, "prune_soon", spy)
    from flows import registry

    params, errors = registry.get("http-crud").validate({"persons": 1, "repeat": 1, "rate": 0, "delay_ms": 0})
    assert not errors
    run = get_runner().start("http-crud", params)
    assert wait_until_finished(run.pk, 60).state == Run.State.SUCCEEDED
    thread = _wait_for_call(started)
    assert thread is not None, "the first finished run starts a prune"
    thread.join(30)
    assert remaining() == {run.pk}
    assert not Event.objects.filter(run_id__in=[r.pk for r in older]).exists()
    # Within FLOWS_PRUNE_EVERY_S no second prune starts.
    assert retention.prune_soon() is None


def _wait_for_call(calls: list) -> object:
    from .polling import wait_until

    # The runner calls it after the run's final state is saved.
    wait_until(lambda: calls, 30, "the runner to ask for a prune")
    return calls[0]
