"""``celery-order``: the request returns at enqueue, the task runs later (lessons 2 and 7).

A client POSTs orders to a real HTTP endpoint; the view enqueues a Celery task and answers
``202 Accepted`` at once. A Celery worker charges the order (the side effect), then sends
the receipt (the slow part). The client's wait, the *perceived* latency, is the enqueue;
the order is done much later, the *end-to-end* latency.

With ``acks_late`` the task message is acked only after the task returned, so a worker
killed mid-task (SIGKILL on RabbitMQ: a real ``celery worker`` process) leaves it unacked:
the broker delivers it again to the next worker and the task runs again, charging twice
unless the task is ``idempotent`` (an inbox row per order). Without ``acks_late`` the
message was acked on receipt and the interrupted task is simply never finished.

Worker events reach the run through a reply queue (``flows.celeryapp.relay``).
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections import Counter
from typing import Any

from ..ledger import DeliveryLedger
from ..params import bool_param, float_param, int_param
from ..registry import Workflow, action

MIN_CRASH_WORK_MS = 200


class CeleryOrder(Workflow):
    slug = "celery-order"
    title = "Celery: order request returns at enqueue, the task runs later"
    pattern = "async"
    protocol = "celery"
    broker = "amqp"
    lesson = (
        "Async IPC: the view enqueues a Celery task and answers 202 at once, so the customer's perceived "
        "latency is the enqueue, far below the end-to-end latency of the order being processed. With acks_late "
        "a worker killed mid-task leaves the task unacked: the broker delivers it again and the task runs again, "
        "a duplicate side effect unless the task is idempotent. Without acks_late the task was acked on receipt "
        "and the interrupted work is never finished."
    )
    params = {
        "orders": int_param(5, 1, 200, "Orders the client places"),
        "rate": float_param(2.0, 0.0, 200.0, "Orders per second (0 = as fast as possible)"),
        "work_ms": int_param(1000, 0, 10000, "How long the task takes: charge at half-time, then send the receipt"),
        "workers": int_param(1, 1, 3, "Celery workers consuming the order queue (a killed one is replaced when none is left)"),
        "acks_late": bool_param(True, "Ack the task message after the task returned, not on receipt"),
        "crash_at": int_param(2, 0, 200, "Kill the worker while it sends the receipt of the N-th order, after "
                                         "charging (0 = never)"),
        "idempotent": bool_param(False, "The task keeps an inbox and charges each order once"),
    }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        cleaned, errors = super().validate(given)
        if not errors and cleaned["crash_at"] and cleaned["work_ms"] < MIN_CRASH_WORK_MS:
            errors["work_ms"] = f"must be at least {MIN_CRASH_WORK_MS} ms with crash_at, so the kill lands while the task runs"
        return cleaned, errors

    def expected(self, params: dict[str, Any]) -> int:
        return params["orders"]

    # -- the steps -------------------------------------------------------------------------

    def setup(self) -> None:
        from ..celeryapp import get_app, relay, tasks
        from ..celeryapp.queues import reply_queue, task_queue
        from ..services.orders import OrderView

        self.amqp = self.ctx.broker("amqp")
        self.prefix = f"{self.ctx.namespace}."
        self.app = get_app(self.amqp.celery_config())
        self.task_name = tasks.TASK_ACKS_LATE if self.p["acks_late"] else tasks.TASK
        self.task_queue = task_queue(self.prefix + "orders")
        self.reply_queue = reply_queue(self.prefix + "celery-events")
        self.view = OrderView(self._enqueue)
        self.workers: list[Any] = []  # alive ones; a killed worker leaves the list
        self.killed: list[Any] = []
        self.worker_count = 0
        self.kills: queue.Queue[tuple[str, str]] = queue.Queue()  # (reason, order or worker actor)
        self._lock = threading.Lock()
        self.sent_at: dict[str, float] = {}
        self.deliveries = DeliveryLedger()  # attempts per order, on the one logical consumer "orders"
        self.in_flight: dict[str, str] = {}  # order → worker running it
        self.finished: set[str] = set()
        self.abandoned: set[str] = set()
        self.charges: Counter[str] = Counter()
        self.crash_log: list[dict[str, Any]] = []
        self.crash_at_pending = self.p["crash_at"]
        self.settled = threading.Event()
        self.client_error: BaseException | None = None
        self.client = threading.Thread(target=self._client, name=f"order-client-{self.ctx.run_id}", daemon=True)
        self.listener: Any = None
        self.admin = self.amqp.connection()
        self.channel = self.admin.channel()
        self.task_queue(self.channel).declare()
        self.reply_queue(self.channel).declare()
        self.listener = relay.listener(self.amqp, self.reply_queue, self._on_worker_event)
        self.listener.start()
        self.listener.ready.wait(10.0)

    def start_consumers(self) -> None:
        self._start_workers(self.p["workers"])
        self.view.start()

    def produce(self) -> None:
        self.client.start()  # its own thread: the run thread kills workers meanwhile (``tick``)

    def settle(self) -> None:
        """Until every order is finished or abandoned; what did not finish in time is reported."""
        try:
            self.ctx.wait_until(self.settled.is_set, self._timeout(), "every order to finish", wake=self.settled)
        except TimeoutError:
            pass
        self.client.join(5.0)

    def report(self) -> dict[str, Any]:
        return self._result(self.channel.queue_declare(queue=self.task_queue.name, passive=True).message_count)

    def teardown(self) -> None:
        from ..amqp.resources import delete_all

        if not hasattr(self, "admin"):
            return  # the broker was never reached
        self.view.stop()
        _stop_all(self.workers + self.killed)
        if self.listener is not None:
            self.listener.stop()
            self.listener.join(5.0)
        try:
            delete_all(self.admin.channel(), [self.task_queue.name, self.reply_queue.name],
                       [self.task_queue.exchange.name])
        finally:
            self.admin.release()

    @action("Kill worker", target="worker", picks=True)
    def on_crash(self, target: str) -> str:
        if not self.workers:
            return "no live worker to kill"
        return self._kill_and_replace("the Kill worker button", target)

    def targets(self, action: str) -> list[str]:
        """Workers alive now (a killed one leaves the list; its replacement joins it)."""
        return [f"worker:{w.name}" for w in list(getattr(self, "workers", [])) if w.alive]

    def tick(self) -> None:
        """Whenever the run thread waits: actions, then a pending kill, then the workers' health."""
        super().tick()
        if self.client_error is not None:
            raise self.client_error
        try:
            reason, target = self.kills.get_nowait()
        except queue.Empty:
            pass
        else:
            self._kill_and_replace(reason, target)
        for worker in self.workers:
            if not worker.alive:
                raise RuntimeError(f"a celery worker died on its own: {worker.failure()}")

    def _timeout(self) -> float:
        return 30.0 + self.p["orders"] * self.p["work_ms"] / 1000.0 + (self.p["orders"] / self.p["rate"] if self.p["rate"]
                                                                         else 0.0)

    # -- workers ------------------------------------------------------------------------

    def _start_workers(self, count: int) -> None:
        """Start ``count`` workers side by side and wait until the broker sees them all consuming."""
        from ..celeryapp.workers import START_TIMEOUT_S, ProcessWorker, ThreadWorker

        started = []
        for _ in range(count):
            self.worker_count += 1
            name = f"w{self.worker_count}"
            if self.amqp.embedded:
                worker: Any = ThreadWorker(name, self.ctx.run_id, self.app, self.task_queue)
            else:
                worker = ProcessWorker(name, self.ctx.run_id, self.amqp.url, self.task_queue.name)
            worker.start()
            self.workers.append(worker)
            started.append(worker)
        if not self.amqp.embedded:
            def consuming() -> bool:
                for worker in started:
                    if not worker.alive:
                        raise RuntimeError(worker.failure())
                return self._consumers() >= len(self.workers)

            self.ctx.wait_until(consuming, START_TIMEOUT_S, "the celery workers to consume", tend=False)
        for worker in started:
            self.ctx.emit("assign", f"worker:{worker.name}", worker=worker.name, pid=worker.pid, queue="orders",
                          task=self.task_name, acks_late=self.p["acks_late"],
                          process="embedded thread" if self.amqp.embedded else "celery worker -P threads -c 1")

    def _consumers(self) -> int:
        return self.channel.queue_declare(queue=self.task_queue.name, passive=True).consumer_count

    def _kill_and_replace(self, reason: str, target: str = "") -> str:
        """Kill the worker running ``target`` (or a busy one, or the first); replace it if none is left.

        Returns what happened, in one sentence."""
        with self._lock:
            busy = {w: order for order, w in self.in_flight.items()}
            wanted = self.in_flight.get(target) or target.removeprefix("worker:")
        worker = next((w for w in self.workers if w.name == wanted), None) or next(
            (w for w in self.workers if w.name in busy), None) or self.workers[0]
        self.workers.remove(worker)
        self.killed.append(worker)
        with self._lock:
            running = [order for order, w in self.in_flight.items() if w == worker.name]
        signal = "thread killed (embedded stand-in for SIGKILL)" if self.amqp.embedded else "SIGKILL"
        worker.kill()
        if not self.amqp.embedded:
            # The kernel closed its socket; wait until RabbitMQ has noticed and requeued.
            left = len(self.workers)
            self.ctx.wait_until(lambda: self._consumers() <= left, 10.0, "RabbitMQ to drop the killed worker's consumer",
                                tend=False)
        actor = f"worker:{worker.name}"
        self.crash_log.append({"worker": worker.name, "pid": worker.pid, "reason": reason, "running": running,
                               "t_ms": round(self.ctx.elapsed_ms(), 3)})
        seq = self.ctx.emit("crash", actor, running[0] if running else "", worker=worker.name, pid=worker.pid,
                            signal=signal, running=running, message_ids=running,
                            reason=f"worker killed mid-task ({reason})")
        for order in running:
            with self._lock:
                self.in_flight.pop(order, None)
            if self.p["acks_late"]:
                self.deliveries.expect_again("orders", order, (
                    f"redelivered: worker {worker.name} was killed ({signal}) while running the task; "
                    "with acks_late the task message was still unacked, so the broker requeued it"))
                self.deliveries.caused_by("orders", order, seq)
                self.ctx.emit("requeue", "queue:orders", order, queue="orders", task=self.task_name,
                              reason=f"worker {worker.name} died with the task unacked (acks_late)", cause_seq=seq)
            else:
                with self._lock:
                    self.abandoned.add(order)
                self.ctx.emit("error", actor, order, task=self.task_name,
                              reason=("the task was acked on receipt (acks_late off): killed mid-task, it will never "
                                      "finish and the broker will not deliver it again"))
        self._check_settled()
        replaced = not self.workers
        if replaced:
            self._start_workers(1)
        doing = f"while running {', '.join(running)}" if running else "while idle"
        return f"{actor} killed ({signal}) {doing}" + ("; a new worker replaces it" if replaced else "")

    # -- the client and the view -----------------------------------------------------------

    def _client(self) -> None:
        try:
            host, port = self.view.address
            conn = http.client.HTTPConnection(host, port, timeout=30)
            pacer = self.ctx.pacer(self.p["rate"])
            try:
                for n in range(1, self.p["orders"] + 1):
                    pacer.wait()
                    self._place(conn, f"order-{n}")
            finally:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - re-raised on the run thread
            self.client_error = exc

    def _place(self, conn: http.client.HTTPConnection, order_id: str) -> None:
        self.ctx.emit("request", "client", order_id, method="POST", path="/orders")
        started = time.perf_counter()
        with self._lock:
            self.sent_at[order_id] = started
        body = json.dumps({"id": order_id, "sent_at": time.time()}).encode()
        conn.request("POST", "/orders", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
        waited = round((time.perf_counter() - started) * 1000.0, 3)
        self.ctx.emit("response", "client", order_id, method="POST", path="/orders", status=response.status,
                      perceived_ms=waited, body=payload)
        if response.status != 202:
            raise RuntimeError(f"POST /orders answered {response.status}: {payload}")

    def _enqueue(self, order: dict[str, Any]) -> None:
        """In the view: hand the task to the broker (confirmed on RabbitMQ) and return."""
        started = time.perf_counter()
        ctl = {"run_id": self.ctx.run_id, "reply_to": self.reply_queue.name, "work_ms": self.p["work_ms"],
               "idempotent": self.p["idempotent"]}
        self.app.send_task(self.task_name, args=[order, ctl], queue=self.task_queue, retry=False)
        self.ctx.emit("enqueue", "server", order["id"], task=self.task_name, queue="orders", confirmed=True,
                      enqueue_ms=round((time.perf_counter() - started) * 1000.0, 3))

    # -- events from the worker -------------------------------------------------------------

    def _on_worker_event(self, event: dict[str, Any]) -> None:
        from ..celeryapp.workers import short_name

        kind, order, attrs = event["kind"], event["order_id"], dict(event["attrs"])
        worker = short_name(attrs.pop("worker", "worker"))
        actor = f"worker:{worker}"
        common = {"worker": worker, "task": attrs.pop("task", self.task_name), "queue": "orders", **attrs}
        if kind == "deliver":
            delivery = self.deliveries.delivered("orders", order, "delivered again" + (
                " (the broker set redelivered)" if attrs.get("redelivered") else ""), holder=worker)
            with self._lock:
                self.in_flight[order] = worker
            attempt, reason = delivery.attempt, delivery.reason
            if delivery.cause_seq:
                common["cause_seq"] = delivery.cause_seq
        else:
            attempt = self.deliveries.attempts_of("orders", order) or 1
            reason = self.deliveries.reason_of("orders", order)
        duplicate = attempt > 1
        if duplicate:
            common["reason"] = reason
        if kind == "process":
            with self._lock:
                if attrs.get("effect", True):
                    self.charges[order] += 1
            common["charges"] = self.charges[order]
            if duplicate:
                common.pop("end_to_end_ms", None)  # the order's end-to-end is its first processing
        if kind == "finished":
            with self._lock:
                self.in_flight.pop(order, None)
                self.finished.add(order)
            if self.p["acks_late"]:
                self.ctx.emit("ack", actor, order, attempt, duplicate, **common)
            self._check_settled()
            return
        self.ctx.emit(kind, actor, order, attempt, duplicate, **common)
        if kind == "process" and not duplicate and self.crash_at_pending and order == f"order-{self.crash_at_pending}":
            self.crash_at_pending = 0
            self.kills.put((f"crash_at={self.p['crash_at']}: after charging {order}, before the task returned", order))

    def _check_settled(self) -> None:
        with self._lock:
            if len(self.finished | self.abandoned) >= self.p["orders"]:
                self.settled.set()

    # -- the result ---------------------------------------------------------------------

    def _result(self, broker_ready: int) -> dict[str, Any]:
        with self._lock:
            unfinished = sorted(set(self.sent_at) - self.finished)
            return {
                "task": self.task_name,
                "acks_late": self.p["acks_late"],
                "idempotent": self.p["idempotent"],
                "queues": {"orders": self.task_queue.name, "events": self.reply_queue.name},
                "workers_started": self.worker_count,
                "crashes": self.crash_log,
                "deliveries": self.deliveries.of("orders"),
                "charges": dict(self.charges),
                "side_effects": {"total": sum(self.charges.values()), "distinct": len(self.charges),
                                 "repeated": {o: n for o, n in self.charges.items() if n > 1}},
                "finished": len(self.finished),
                "unfinished": unfinished,
                "abandoned": sorted(self.abandoned),
                "broker_ready": broker_ready,
                # A task is processed once it finished (charge, then receipt): one killed after
                # the charge with acks_late off is never run again, so its receipt is lost.
                "lost": len(unfinished),
            }


def _stop_all(workers: list[Any]) -> None:
    """Stop workers side by side: each warm shutdown takes a moment."""
    threads = [threading.Thread(target=w.stop, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15.0)
