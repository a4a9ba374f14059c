"""The runner: every run ends in a final state with its events kept and a clear error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from flows import registry, runner
from flows.models import Event, Run
from flows.registry import Workflow
from flows.runner import Runner, get_runner, reap_orphans_at_startup, wait_until_finished

from .polling import wait_for_events, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Exploding(Workflow):
    slug = "test-exploding"
    title = "explodes"
    pattern = "async"
    protocol = "amqp"
    lesson = "test"

    def run(self, ctx):
        ctx.emit("publish", "producer", "m1")
        raise ValueError("boom")


class NeedsRabbit(Workflow):
    slug = "test-needs-rabbit"
    title = "needs a broker"
    pattern = "async"
    protocol = "amqp"
    lesson = "test"
    broker = "amqp"

    def run(self, ctx):
        ctx.broker("amqp")
        ctx.emit("publish", "producer", "m1")


class IgnoresCancel(Workflow):
    """Keeps emitting until the test lets it go, whatever the runner asks."""

    slug = "test-ignores-cancel"
    title = "ignores cancellation"
    pattern = "async"
    protocol = "amqp"
    lesson = "test"
    release = threading.Event()
    returned = threading.Event()

    def run(self, ctx):
        n = 0
        while not self.release.is_set():
            n += 1
            ctx.emit("publish", "producer", f"m{n}")
            self.release.wait(0.01)
        for i in range(5):  # what a stuck thread does once it wakes: none of it may be recorded
            ctx.emit("process", "consumer", f"late{i}")
        self.returned.set()
        return {"lost": 7}


@pytest.fixture
def test_workflows(monkeypatch):
    module = types.ModuleType("flows_test_workflows")
    module.Exploding, module.NeedsRabbit, module.IgnoresCancel = Exploding, NeedsRabbit, IgnoresCancel
    monkeypatch.setitem(sys.modules, "flows_test_workflows", module)
    for cls in (Exploding, NeedsRabbit, IgnoresCancel):
        monkeypatch.setitem(registry.WORKFLOWS, cls.slug, f"flows_test_workflows:{cls.__name__}")
    registry.get.cache_clear()
    yield
    registry.get.cache_clear()


def test_a_workflow_exception_fails_the_run_and_keeps_its_events(test_workflows):
    run = wait_until_finished(get_runner().start(Exploding.slug, {}).pk, 20)
    assert run.state == "failed" and run.error == "ValueError: boom"
    events = list(run.events.order_by("seq").values_list("kind", "attrs"))
    assert [k for k, _ in events] == ["publish", "error", "done"]
    assert events[1][1]["reason"] == "ValueError: boom"
    assert run.summary["counts"]["published"] == 1 and run.summary["state"] == "failed"


def test_a_broker_that_is_down_fails_the_run_within_seconds(test_workflows, broker_mode):
    broker_mode("amqp", "external", "amqp://guest:guest@127.0.0.1:1//")
    started = time.monotonic()
    run = wait_until_finished(get_runner().start(NeedsRabbit.slug, {}).pk, 20)
    assert time.monotonic() - started < 10
    assert run.state == "failed"
    assert "RabbitMQ" in run.error and "127.0.0.1:1" in run.error and "not reachable" in run.error
    assert run.brokers["amqp"]["mode"] == "external"


def test_runs_orphaned_by_a_dead_server_are_failed():
    dead = Run.objects.create(workflow="http-crud", state="running", owner=f"{socket.gethostname()}:999999999")
    elsewhere = Run.objects.create(workflow="http-crud", state="running", owner="another-host:1")
    Runner()._reap_orphans()
    dead.refresh_from_db()
    elsewhere.refresh_from_db()
    assert dead.state == "failed" and "server stopped" in dead.error
    assert elsewhere.state == "running", "runs of other hosts are not ours to judge"


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_startup_hook_fails_runs_orphaned_by_a_dead_server_and_freezes_their_summary():
    host = socket.gethostname()
    orphan = Run.objects.create(workflow="http-crud", state="running", owner=f"{host}:{dead_pid()}")
    pending = Run.objects.create(workflow="http-crud", state="pending", owner=f"{host}:{dead_pid()}")
    for seq, kind in enumerate(["request", "deliver", "process"], start=1):
        Event.objects.create(run=orphan, seq=seq, t_ms=float(seq), kind=kind, actor="a", message_id="m1")
    # Alive, but on another host (this pid is alive here: it must not be judged by it).
    elsewhere = Run.objects.create(workflow="http-crud", state="running", owner=f"another-host:{os.getpid()}")
    mine = Run.objects.create(workflow="http-crud", state="running", owner=runner.owner_id())

    reap_orphans_at_startup()

    for run in (orphan, pending):
        run.refresh_from_db()
        assert run.state == "failed" and run.error == "the server stopped during this run"
        assert run.finished_at is not None
        # Frozen from the stored events, with the final state: page, socket and API agree.
        assert run.summary["state"] == "failed" and run.summary["error"] == run.error
        assert get_runner().summary(run.pk)["state"] == "failed"
    assert orphan.summary["counts"]["events"] == orphan.summary["last_seq"] == 3
    # Nothing was appended: the log stays gapless and as the dead server left it.
    assert list(orphan.events.values_list("seq", flat=True)) == [1, 2, 3]
    for run in (elsewhere, mine):
        run.refresh_from_db()
        assert run.state == "running" and run.error == ""


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(runner, "GRACE_S", 0.5)
    IgnoresCancel.release.clear()
    IgnoresCancel.returned.clear()
    yield 0.5
    IgnoresCancel.release.set()  # never leave the thread spinning
    assert IgnoresCancel.returned.wait(10)


def assert_finished_without_the_workflow(run_id: int, reason: str) -> Run:
    run = wait_until_finished(run_id, 20)
    assert run.state == "failed"
    assert run.error == f"{reason}; the workflow did not stop within 0.5 s of being cancelled"
    # The slot goes right after the final state is stored (the same finishing step), so poll briefly.
    wait_until(lambda: not get_runner().is_live(run_id), 5, "the live slot to be released")
    kinds = list(run.events.order_by("seq").values_list("kind", flat=True))
    assert kinds[-2:] == ["error", "done"]
    assert run.summary["state"] == "failed" and run.summary["last_seq"] == len(kinds)
    return run


@pytest.mark.parametrize("how", ["user", "deadline"])
def test_a_workflow_that_ignores_cancel_is_finished_after_the_grace_period(test_workflows, short_grace, how):
    runner_ = get_runner()
    started = runner_.start(IgnoresCancel.slug, {}, timeout_s=0.3 if how == "deadline" else None)
    live = runner_._live[started.pk]  # to join its thread once it is let go
    reason = "timed out after 0.3 s" if how == "deadline" else "cancelled by the user"
    if how == "user":
        wait_for_events(started.pk, bool, 10, "the workflow's first event")
        runner_.act(started.pk, "cancel")
    run = assert_finished_without_the_workflow(started.pk, reason)
    stored = run.events.count()

    # The stuck thread wakes up, emits and returns: none of that reaches the record.
    IgnoresCancel.release.set()
    live.thread.join(10)
    assert not live.thread.is_alive()
    assert live.recorder.dropped >= 5
    again = Run.objects.get(pk=run.pk)
    assert again.events.count() == stored
    assert again.events.order_by("-seq").first().kind == "done"
    assert (again.state, again.error, again.summary) == (run.state, run.error, run.summary)
    assert again.result == {}, "the late result is not stored"


def test_a_slot_held_by_a_stuck_workflow_is_freed_for_new_runs(test_workflows, short_grace, settings):
    settings.FLOWS_MAX_LIVE_RUNS = 1
    runner_ = get_runner()
    stuck = runner_.start(IgnoresCancel.slug, {}, timeout_s=0.3)
    assert_finished_without_the_workflow(stuck.pk, "timed out after 0.3 s")
    IgnoresCancel.release.set()
    run = wait_until_finished(runner_.start(Exploding.slug, {}).pk, 20)
    assert run.state == "failed" and run.error == "ValueError: boom"


def test_a_wait_with_progress_times_out_only_once_the_work_stands_still():
    from flows.context import RunContext
    from flows.recorder import Recorder

    class Keep:
        def wake(self, recorder: Recorder) -> None:
            pass

    ctx = RunContext(1, {}, Recorder(1, Keep()))
    done = {"n": 0}

    def advance() -> int:  # one step of work per check, 30 checks in all: far longer than the timeout
        done["n"] = min(done["n"] + 1, 30)
        return done["n"]

    started = time.monotonic()
    ctx.wait_until(lambda: done["n"] >= 30, 0.2, "the work", step=0.02, progress=advance)
    assert time.monotonic() - started > 0.2 * 2  # it outlived its timeout while the work advanced
    with pytest.raises(TimeoutError, match="timed out after 0.1 s without progress waiting for nothing"):
        ctx.wait_until(lambda: False, 0.1, "nothing", step=0.02, progress=lambda: 0)


def test_waiting_for_a_run_of_this_process_reads_the_database_only_before_and_after(test_workflows, monkeypatch):
    IgnoresCancel.release.clear()
    IgnoresCancel.returned.clear()
    run_id = get_runner().start(IgnoresCancel.slug, {}).pk
    reads = []
    real_get = Run.objects.get
    monkeypatch.setattr(Run.objects, "get", lambda **kw: reads.append(kw) or real_get(**kw))
    threading.Timer(0.8, IgnoresCancel.release.set).start()  # a run that lasts about 0.8 s
    run = wait_until_finished(run_id, 20)
    assert run.state == "succeeded"
    assert len(reads) == 2  # not one every 0.2 s while it ran
