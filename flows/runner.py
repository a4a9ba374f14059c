"""Starting workflows in the background and seeing them through to a final state.

Each run gets its own thread (broker clients block), a recorder, a context and a
watchdog that cancels it at its deadline. Whatever happens inside the workflow, the run
ends with a ``done`` event, a stored summary and one of the final states.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.urls import reverse
from django.utils import timezone

from . import eventstore, registry, retention, run_resources
from .bounded_result import bound_result
from .broker_watch import BrokerWatch
from .context import Action, Outcome, RunCancelled, RunContext
from .fidelity import Fidelity, FlowTicker, stayed_full_why
from .lazy import Lazy
from .models import Run
from .pipeline import EventPipeline, get_pipeline
from .recorder import Recorder
from .summary import SummaryBuilder
from .transports import BrokerUnavailable, describe_all

log = logging.getLogger(__name__)

# A cancelled workflow (by the user, its deadline or itself) gets this long to return;
# then the run is finished without it, as failed, and its live slot is freed. Read when
# the cancel happens, so it can be changed at run time (tests lower it).
GRACE_S = 10.0
CANCEL_ACTION = "cancel"
ORPHANED = "the server stopped during this run"


class RunnerError(Exception):
    status = 400
    field = "action"  # the request field an API error names


class TooManyRuns(RunnerError):
    status = 429


class NotLive(RunnerError):
    status = 409


class BadTarget(RunnerError):
    """The action does not apply to the target named (no such live consumer, member…)."""

    field = "target"


class ActionRefused(RunnerError):
    """The action's request is wrong in these fields (``errors``: field → why)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class TooManyActions(RunnerError):
    status = 429


class ActionBucket:
    """At most ``per_s`` actions a second per run, in bursts of as many: a held-down Enter
    must not flood the broker."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self.tokens = per_s
        self.at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.per_s, self.tokens + (now - self.at) * self.per_s)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LiveRun:
    def __init__(self, run: Run, workflow: registry.Workflow, ctx: RunContext, recorder: Recorder) -> None:
        self.run = run
        self.workflow = workflow
        self.ctx = ctx
        self.recorder = recorder
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None
        # Started by the first cancel; finishes the run if the workflow has not returned.
        self.grace: threading.Timer | None = None
        self._claimed = False
        self._claim_lock = threading.Lock()
        self.bucket = ActionBucket(settings.FLOWS_ACTIONS_PER_S)
        # Emits the run's flow frames while it may sample (contracts: "Fidelity").
        self.ticker: FlowTicker | None = None

    def claim(self) -> bool:
        """True for the one caller (the run thread or the grace timer) that finishes the run."""
        with self._claim_lock:
            claimed, self._claimed = self._claimed, True
            return not claimed


class Runner:
    def __init__(self, pipeline: EventPipeline | None = None) -> None:
        self.pipeline = pipeline or get_pipeline()
        self._live: dict[int, LiveRun] = {}
        self._lock = threading.Lock()
        self._reaped = False

    # -- starting ---------------------------------------------------------------------

    def start(self, slug: str, params: dict[str, Any], timeout_s: float | None = None) -> Run:
        """Create and launch a run; ``params`` must already be validated."""
        workflow_cls = registry.get(slug)
        self._reap_orphans()
        with self._lock:
            if len(self._live) >= settings.FLOWS_MAX_LIVE_RUNS:
                raise TooManyRuns(
                    f"{len(self._live)} runs are live (limit {settings.FLOWS_MAX_LIVE_RUNS}); wait or cancel one"
                )
            workflow = workflow_cls()
            # Actions are vetted on web threads from now on, maybe before the run thread starts.
            workflow.p = params
            run = Run.objects.create(
                workflow=slug,
                params=params,
                expected=workflow.expected(params),
                brokers=self._brokers_for(workflow_cls, params),
                owner=owner_id(),
            )
            fidelity = None
            if workflow_cls.pattern == "async":
                fidelity = Fidelity(params.get("fidelity", "auto"), run.expected, workflow.pace(params))
            recorder = Recorder(run.pk, self.pipeline, fidelity=fidelity)
            ctx = RunContext(run.pk, params, recorder, run.namespace)
            live = LiveRun(run, workflow, ctx, recorder)
            ctx.on_cancel = lambda reason: self._start_grace(live)
            self._live[run.pk] = live
        self.pipeline.track(recorder, lambda: self.summary_of(live.run))
        if fidelity is not None and fidelity.asked != "full":
            live.ticker = FlowTicker(fidelity, recorder.emit, lambda: recorder.seq, recorder.elapsed_ms,
                                     name=f"flow-{run.pk}")
            if fidelity.sampling:
                live.ticker.tick(fidelity.why)  # sampled from the start: the log says so first
            live.ticker.start()
        if timeout_s is None:
            timeout_s = settings.FLOWS_INTERACTIVE_TIMEOUT_S if params.get("interactive") else settings.FLOWS_RUN_TIMEOUT_S
        deadline = timeout_s
        live.thread = threading.Thread(target=self._execute, args=(live, deadline), name=f"run-{run.pk}", daemon=True)
        live.thread.start()
        return run

    @staticmethod
    def _brokers_for(workflow_cls: type[registry.Workflow], params: dict[str, Any]) -> dict[str, Any]:
        described = describe_all()
        return {name: described.get(name, {}) for name in workflow_cls.brokers_of(params)}

    # -- controlling ------------------------------------------------------------------

    def act(self, run_id: int, name: str, target: str = "", params: Any = None) -> Outcome:
        """Hand ``name`` to the run; its outcome is settled once the run thread handled it.

        A target the action does not apply to now (``BadTarget``) or bad params
        (``ActionRefused``) are refused here, before anything is queued; ``cancel`` is
        run-level and answered at once.
        """
        live = self._live_run(run_id)
        # Cancel is never rate-limited: whoever flooded the run can always stop it.
        if name == CANCEL_ACTION:
            already = live.ctx.cancelled.is_set()
            live.ctx.cancel("cancelled by the user")
            return Outcome(f"the run is already stopping ({live.ctx.stop_reason})" if already else "run cancelled")
        if not live.bucket.take():
            raise TooManyActions(f"too many actions: at most {settings.FLOWS_ACTIONS_PER_S:g} a second per run")
        if name not in live.workflow.actions:
            known = ", ".join([CANCEL_ACTION, *live.workflow.actions])
            raise RunnerError(f"unknown action {name!r} for {live.run.workflow}; known: {known}")
        cleaned, errors = live.workflow.vet(name, target, params)
        if list(errors) == ["target"]:
            raise BadTarget(errors["target"])
        if errors:
            raise ActionRefused(errors)
        pending = Action(name, target, cleaned)
        live.ctx.ask(pending)
        return pending.outcome

    def action_menu(self, run_id: int) -> dict[str, dict[str, Any]]:
        """The live run's actions and the targets each applies to now; ``cancel`` is run-level."""
        live = self._live_run(run_id)
        return {**live.workflow.menu(),
                CANCEL_ACTION: {"label": "Cancel run", "target": None, "picks": False, "hands_on": False,
                                "params": {}, "targets": []}}

    def _live_run(self, run_id: int) -> LiveRun:
        live = self._live.get(run_id)
        if live is None:
            raise NotLive(f"run {run_id} is not live in this server; actions apply to live runs only")
        return live

    def wait(self, run_id: int, timeout: float) -> bool:
        live = self._live.get(run_id)
        return True if live is None else live.finished.wait(timeout)

    def is_live(self, run_id: int) -> bool:
        return run_id in self._live

    # -- summaries --------------------------------------------------------------------

    def summary(self, run_id: int) -> dict[str, Any]:
        live = self._live.get(run_id)
        run = live.run if live else Run.objects.get(pk=run_id)
        if run.summary and not live:
            # Summaries frozen before results were bounded may carry a result too big for a frame.
            return {**run.summary, "result": bound_result(run.summary.get("result"), result_url(run.pk))}
        return self.summary_of(run)

    def summary_of(self, run: Run) -> dict[str, Any]:
        tracked = self.pipeline.tracked(run.pk)
        if tracked is not None:
            figures = tracked.builder.snapshot()
        else:
            figures = SummaryBuilder().feed_all(eventstore.iter_events(run.pk)).snapshot()
        pattern = registry.get(run.workflow).pattern if run.workflow in registry.WORKFLOWS else "async"
        # The plan's completions only: a delivery the workflow did not plan never pushes done past expected.
        done = figures["planned"]["response" if pattern == "sync" else "process"]
        if not figures["fidelity"]["why"]:
            asked = (run.params or {}).get("fidelity")
            figures["fidelity"] = {**figures["fidelity"], "why": stayed_full_why(asked, pattern)}
        return {
            "id": run.pk,
            "workflow": run.workflow,
            "params": run.params,
            "state": run.state,
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "created_at": _iso(run.created_at),
            "error": run.error,
            "brokers": run.brokers,
            "expected": run.expected,
            "progress": {"done": done, "expected": run.expected},
            # Bounded: the summary goes to every client in one WebSocket frame.
            "result": bound_result(run.result, result_url(run.pk)),
            **figures,
        }

    # -- the run thread ---------------------------------------------------------------

    def _execute(self, live: LiveRun, deadline_s: float) -> None:
        run, ctx = live.run, live.ctx
        watchdog = threading.Timer(deadline_s, ctx.cancel, args=(f"timed out after {deadline_s:g} s",))
        watchdog.daemon = True
        watches = [BrokerWatch(ctx, name) for name in live.workflow.brokers_of(ctx.params)]
        state, error, result = Run.State.FAILED, "", {}
        try:
            run.state = Run.State.RUNNING
            run.started_at = timezone.now()
            run.save(update_fields=["state", "started_at"])
            watchdog.start()
            for watch in watches:
                watch.start()
            result = live.workflow.run(ctx) or {}
            if ctx.cancelled.is_set():
                raise RunCancelled(ctx.stop_reason)
            state = Run.State.SUCCEEDED
        except RunCancelled as exc:
            timed_out = str(exc).startswith("timed out")
            state = Run.State.FAILED if timed_out else Run.State.CANCELLED
            error = str(exc)
        except BrokerUnavailable as exc:
            error = str(exc)
        except Exception as exc:  # every failure becomes the run's error
            log.exception("run %s (%s) failed", run.pk, run.workflow)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            watchdog.cancel()
            for watch in watches:
                watch.stop()
        broken = None if state == Run.State.SUCCEEDED else next(
            (watch for watch in watches if watch.broke(recheck=state == Run.State.FAILED)), None)
        if broken is not None:
            # The broker died: that is the run's error, whatever the workflow raised on its way out.
            self.pipeline.flush(live.recorder, timeout=10.0)
            state, (error, result) = Run.State.FAILED, broken.outcome(result)
        # Whatever the outcome: read the broker's figures, then delete what the run left there.
        result = run_resources.release_into(run.pk, result)
        if live.claim():
            self._finish(live, state, error, result)
        else:
            # The grace timer finished this run without the workflow; nothing it did since
            # is part of the record (the recorder is closed).
            log.warning("run %s: the workflow returned after the run was finished without it", run.pk)
            connection.close()

    def _start_grace(self, live: LiveRun) -> None:
        grace_s = GRACE_S
        timer = threading.Timer(grace_s, self._abandon, args=(live, grace_s))
        timer.daemon = True
        live.grace = timer
        timer.start()

    def _abandon(self, live: LiveRun, grace_s: float) -> None:
        """The workflow ignored cancellation: finish the run without it."""
        if not live.claim():
            return  # the workflow returned in time; the run thread is finishing it
        reason = live.ctx.stop_reason
        log.error("run %s (%s) did not stop within %g s of being cancelled (%s)", live.run.pk, live.run.workflow,
                  grace_s, reason)
        # What the stuck workflow made on the brokers goes too (releasing twice is harmless).
        result = run_resources.release_into(live.run.pk, {})
        self._finish(live, Run.State.FAILED, f"{reason}; the workflow did not stop within {grace_s:g} s of being "
                                            "cancelled", result)

    def _finish(self, live: LiveRun, state: str, error: str, result: dict[str, Any]) -> None:
        """Record the end of the run; only the caller that won ``live.claim()`` gets here."""
        run, ctx = live.run, live.ctx
        if live.grace is not None:
            live.grace.cancel()
        if live.ticker is not None:
            live.ticker.stop()  # the recorder stamps the last flow frame with done
        try:
            if error:
                ctx.emit("error", "runner", reason=error)
            # The last event of the log: the recorder refuses any emit after it.
            live.recorder.emit("done", "runner", attrs={"state": state, "lost": int(result.get("lost", 0) or 0)}, last=True)
            if not self.pipeline.flush(live.recorder, timeout=30.0):
                state, error = Run.State.FAILED, error or "events could not be stored in time"
            run.state = state
            run.error = error
            run.result = result
            run.finished_at = timezone.now()
            run.summary = self.summary_of(run)
            run.save(update_fields=["state", "error", "result", "finished_at", "summary"])
            self.pipeline.publish_summary(run.pk, run.summary)
        except Exception:
            log.exception("could not finish run %s", run.pk)
        finally:
            with self._lock:
                self._live.pop(run.pk, None)
            self.pipeline.untrack(run.pk)
            live.finished.set()
            connection.close()
            retention.prune_soon()

    # -- housekeeping -----------------------------------------------------------------

    def _reap_orphans(self) -> None:
        """Once per process, before its first run: the server checks at startup, a
        ``runflow`` process here."""
        if self._reaped:
            return
        self._reaped = True
        reap_orphans()
        close_old_connections()


def reap_orphans() -> list[int]:
    """Fail the runs a dead process of this host left live; returns their ids.

    Their event log is left as stored (nothing is appended, so ``seq`` stays gapless) and
    their summary is frozen from those events with the final state, so the run page, the
    WebSocket and the API all say ``failed``. Runs of other hosts are not ours to judge.
    """
    host, me = socket.gethostname(), owner_id()
    runner = get_runner()
    reaped = []
    for run in Run.objects.filter(state__in=Run.LIVE_STATES).exclude(owner=me):
        name, _, pid = run.owner.partition(":")
        if name != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        run.state, run.error, run.finished_at = Run.State.FAILED, ORPHANED, timezone.now()
        run.summary = runner.summary_of(run)
        # Only while still live: another process starting at the same time may have reaped it.
        if Run.objects.filter(pk=run.pk, state__in=Run.LIVE_STATES).update(
            state=run.state, error=run.error, finished_at=run.finished_at, summary=run.summary
        ):
            reaped.append(run.pk)
    return reaped


def reap_orphans_at_startup() -> None:
    """Called once as the server process starts, before it serves anyone.

    Best effort: a database that is not migrated or not reachable yet must not keep the
    server from starting; the runner checks again before its first run.
    """
    try:
        reaped = reap_orphans()
    except Exception as exc:  # noqa: BLE001 - see above
        log.warning("runs orphaned by a stopped server were not checked at startup: %s", exc)
        return
    finally:
        connection.close()
    if reaped:
        log.warning("failed %d run(s) left live by a stopped server: %s", len(reaped), reaped)


def result_url(run_id: int) -> str:
    """Where a run's whole result is served (the summary carries a bounded copy)."""
    return reverse("run-result", args=[run_id])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


_runner: Lazy[Runner] = Lazy(Runner)


def get_runner() -> Runner:
    return _runner.get()


def wait_until_finished(run_id: int, timeout: float) -> Run:
    """Block until the run reaches a final state, with a deadline (read from the database)."""
    deadline = time.monotonic() + timeout
    runner = get_runner()
    while True:
        run = Run.objects.get(pk=run_id)
        if not run.live:
            return run
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"run {run_id} still {run.state} after {timeout:g} s")
        # A run of this process is awaited on its event (set once its final state is saved), not
        # with a query every 0.2 s competing with it; a run of another process is polled.
        if not (runner.is_live(run_id) and runner.wait(run_id, left)):
            time.sleep(min(0.2, left))
