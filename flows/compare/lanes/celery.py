"""The Celery lane: the caller POSTs, the view enqueues a task and answers 202, a worker runs it.

The caller POSTs each order to a real HTTP order view (``flows.services.orders.OrderView``)
that sends the task to the run's task queue ``<namespace>.celery.orders`` (confirmed on
RabbitMQ) and answers ``202 Accepted``: the caller's perceived latency is the 202.

The fulfilment service is one Celery worker (``flows.celeryapp.workers.ThreadWorker``,
concurrency 1, prefetch 1) whose task is ``acks_late``: the message is acked after the
task returned. The worker runs in a thread of this process in both modes, on the
embedded broker and on RabbitMQ, so its task calls the lane directly; a worker process
would need a relay queue back to the run (as ``celery-order`` has) and would not change
the pattern being compared: the task still comes from the broker's queue and is acked
there. When the fulfilment crashes a handling, the task raises ``Reject(requeue=True)``:
the message goes back to the head of the queue unacked, with ``redelivered`` set, and the
worker runs it again, a duplicate.

The outage stops the worker: the task being handled finishes and is acked first (the
task's ``Request`` tells the lane when its message is acked), then the worker shuts itself
down on its own thread (a py-amqp connection is not thread-safe). A task it still receives
meanwhile is handed back unhandled (``Reject(requeue=True)`` before any work; RabbitMQ marks
it ``redelivered``) and is not counted as a delivery. A new worker starts when the outage
ends and takes up the backlog. ``backlog`` is the task queue's ready messages as the broker
reports them (a passive ``queue.declare``).

Celery logs each ``Reject`` as a warning with its traceback: for this lane those are the
crashes the run asked for, recorded as ``crash`` events.
"""

from __future__ import annotations

import functools
import http.client
import json
import threading
from typing import Any

from ..lane import CallFailed, HandlingCrashed, Lane

TASK = "sync_vs_async.fulfil"
WORKER = "worker:celery"
REDELIVERED = "delivered again (the broker set redelivered)"
DELIVERED_AGAIN = "delivered again"
HTTP_TIMEOUT_S = 10.0
STOP_MARGIN_S = 5.0  # beyond one handling's work, for the task in hand to finish and be acked

_lanes: dict[str, CeleryLane] = {}  # the live lanes by task queue name: how a task finds its run
_lanes_lock = threading.Lock()


def _lane_of(queue: str) -> CeleryLane | None:
    with _lanes_lock:
        return _lanes.get(queue)


def _fulfil_task(task: Any, order: str, lane: str) -> None:
    from celery.exceptions import Reject

    target = _lane_of(lane)
    if target is None:  # its run ended: nobody is left to do the work
        raise Reject(f"no live run consumes {lane}", requeue=False)
    target.run_task(task, order)


@functools.cache
def _request_class() -> type:
    """The worker's request for the lane's task: it tells the lane when the message is acked or rejected."""
    from celery.worker.request import Request

    class LaneRequest(Request):
        def acknowledge(self) -> None:
            super().acknowledge()
            self._settled(acked=True)

        def reject(self, requeue: bool = False) -> None:
            super().reject(requeue)
            self._settled(acked=False)

        def _settled(self, acked: bool) -> None:
            lane = _lane_of(self.kwargs.get("lane", ""))
            if lane is not None:
                lane.settled(self.args[0], acked)

    return LaneRequest


class CeleryLane(Lane):
    protocol = "celery"
    sync = False
    broker = "amqp"
    backlog_actor = "queue:celery.orders"
    backlog_source = "ready tasks in the Celery task queue (passive queue.declare)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: Any = None  # the task queue, a BrokerQueue
        self.view: Any = None
        self.worker: Any = None
        self._http: http.client.HTTPConnection | None = None
        self.stopped: list[Any] = []  # workers told to stop, joined at teardown
        self._state = threading.Condition()  # guards the two below
        self._retired: set[str] = set()  # names of the workers told to stop: they hand tasks back unhandled
        self._holding = ""  # the order whose task is running or not yet acked

    # -- setup and teardown ---------------------------------------------------------------

    def setup(self) -> None:
        from ...celeryapp import get_app
        from ...celeryapp.queues import task_queue
        from ...services.orders import OrderView
        from .broker_queue import BrokerQueue

        self.amqp = self.ctx.broker("amqp")
        self.app = get_app(self.amqp.celery_config())
        # Registered once per app (a second call returns the same task).
        self.app.task(name=TASK, bind=True, acks_late=True, shared=False, Request=_request_class())(_fulfil_task)
        self.queue = task_queue(f"{self.ctx.namespace}.celery.orders")
        self.tasks = BrokerQueue(self.amqp, self.queue)
        self.tasks.declare()
        with _lanes_lock:
            _lanes[self.queue.name] = self
        self.view = OrderView(self._enqueue)
        self.view.start()

    def teardown(self) -> None:
        self.stop_downstream()
        for worker in self.stopped:
            worker.join()
        if self.view is not None:
            self.view.stop()
        if self._http is not None:
            self._http.close()
        if self.tasks is not None:
            self.app.amqp.queues.pop(self.queue.name, None)
            with _lanes_lock:
                _lanes.pop(self.queue.name, None)
            self.tasks.delete()

    # -- the caller and the view ----------------------------------------------------------------

    def hand_over(self, order: str) -> dict[str, Any]:
        if self._http is None:
            self._http = http.client.HTTPConnection(*self.view.address, timeout=HTTP_TIMEOUT_S)
        try:
            self._http.request("POST", "/orders", body=json.dumps({"id": order}),
                               headers={"Content-Type": "application/json"})
            response = self._http.getresponse()
            body = json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException) as exc:
            self._http.close()
            self._http = None
            raise CallFailed(f"POST /orders failed: {exc}") from exc
        if response.status != 202:
            raise CallFailed(f"POST /orders answered {response.status}: {body.get('error', '')}",
                             status=response.status)
        return {"status": response.status, "queue": self.queue.name}

    def _enqueue(self, order: dict[str, Any]) -> None:
        """In the view: send the task (confirmed on RabbitMQ) and return; the view answers 202."""
        self.app.send_task(TASK, args=[order["id"]], kwargs={"lane": self.queue.name}, queue=self.queue,
                           retry=False)

    # -- the fulfilment service: one worker ------------------------------------------------

    def start_downstream(self) -> None:
        from ...celeryapp.workers import ThreadWorker

        # A new worker each time, with a name of its own: the one told to stop may still be winding down.
        worker = ThreadWorker(f"celery-{len(self.stopped) + 1}", self.ctx.run_id, self.app, self.queue)
        worker.start()  # returns once the worker consumes the task queue
        self.worker = worker

    def stop_downstream(self) -> None:
        worker, self.worker = self.worker, None
        if worker is None:
            return
        with self._state:
            self._retired.add(worker.name)
            # The task in hand finishes and is acked first: stopping now would requeue a handled task.
            self._state.wait_for(lambda: not self._holding, self.fulfilment.work_s + STOP_MARGIN_S)
        worker.stop_on_its_thread()
        self.stopped.append(worker)

    def run_task(self, task: Any, order: str) -> None:
        """On the worker's thread: one handling of ``order``'s task."""
        from celery.exceptions import Reject

        from ...celeryapp.tasks import worker_name

        worker = worker_name(task)
        with self._state:
            if worker in self._retired:
                # Received by a worker told to stop: never handled, so not a delivery here.
                raise Reject("the worker is stopping: the task goes back to the queue unhandled", requeue=True)
            self._holding = order
        redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
        try:
            self.fulfil(order, WORKER, REDELIVERED if redelivered else DELIVERED_AGAIN, task=TASK, worker=worker,
                        redelivered=redelivered)
        except HandlingCrashed as crashed:
            raise Reject(str(crashed), requeue=True) from None

    def settled(self, order: str, acked: bool) -> None:
        """The worker acked (or handed back) ``order``'s task message."""
        with self._state:
            held = self._holding == order
            if held:
                self._holding = ""
                self._state.notify_all()
        if held and acked:
            attempt = self.ledger.attempts_of(self.protocol, order)
            self.emit("ack", WORKER, order, attempt, attempt > 1, task=TASK)

    # -- what the broker says -------------------------------------------------------------

    def backlog(self) -> int | None:
        return self.tasks.depth() if self.tasks is not None else None

    def broker_counts(self) -> dict[str, Any]:
        return self.tasks.counts()
