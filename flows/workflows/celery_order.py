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
import re
import threading
import time
from collections import Counter
from typing import Any

from ..ledger import DeliveryLedger
from ..params import Param, ParamError, bool_param, choice_param, float_param, int_param
from ..registry import Workflow, action

MIN_CRASH_WORK_MS = 200
MAX_WORKERS = 4  # a run grows to at most this many live workers by hand
ORDER_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def checked_order_id(value: str) -> str:
    """Param check for a hand-placed order's id: empty (the next one) or a short plain id."""
    value = value.strip()
    if value and not ORDER_ID_RE.match(value):
        raise ParamError("must be empty (the next order) or 1-40 letters, digits, '.', '_' or '-'")
    return value


ORDER_PARAMS = {"order": Param("text", "", "Order id; empty = the next one (order-N)", max_length=40,
                               check=checked_order_id, label="Order")}
QUEUE_PARAMS = {"queue": choice_param("orders", ("orders",), "The task queue the worker consumes", label="Queue")}


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
        "orders": int_param(5, 0, 200, "Orders the client places"),
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
        self.hand_orders: list[str] = []  # placed by hand, in order: not in the plan
        self.stopping: list[threading.Thread] = []  # warm shutdowns of workers removed by hand
        self.joining: list[Any] = []  # started by hand, not consuming yet
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
        self._check_settled()  # nothing to wait for when no order was placed
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
        for stopping in self.stopping:
            stopping.join(15.0)
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

    # -- hands on (interactive runs) ---------------------------------------------------

    @action("Place order", params=ORDER_PARAMS, hands_on=True)
    def on_publish(self, target: str, order: str) -> dict[str, Any]:
        refused = self.check_action("publish", target, {"order": order})
        if refused:
            return refused["order"]
        order_id = order or self._next_order_id()
        with self._lock:
            self.hand_orders.append(order_id)
        self._check_settled()
        conn = http.client.HTTPConnection(*self.view.address, timeout=30)
        try:
            self._place(conn, order_id, planned=False)
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            with self._lock:
                self.hand_orders.remove(order_id)
                self.sent_at.pop(order_id, None)
            self._check_settled()
            self.ctx.emit("error", "client", order_id, reason=f"placing {order_id} failed: {exc}", by_hand=True)
            return {"result": f"POST /orders {order_id} failed: {exc}", "message_id": order_id}
        finally:
            conn.close()
        return {"result": f"POST /orders {order_id}: 202, the task is on the queue", "message_id": order_id}

    @action("Add worker", params=QUEUE_PARAMS, hands_on=True)
    def on_add_consumer(self, target: str, queue: str) -> str:
        if len(self.workers) >= MAX_WORKERS:
            return f"at most {MAX_WORKERS} workers: none added"
        worker = self._spawn()
        self.joining.append(worker)
        return f"worker:{worker.name} is starting; it consumes {queue} as soon as it is up"

    @action("Remove worker", target="worker", picks=True, params=QUEUE_PARAMS, hands_on=True)
    def on_remove_consumer(self, target: str, queue: str) -> str:
        if len(self.workers) <= 1:
            return "the last worker stays: add one before removing this one"
        with self._lock:
            busy = set(self.in_flight.values())
        wanted = target.removeprefix("worker:")
        worker = next((w for w in self.workers if w.name == wanted), None) or next(
            (w for w in reversed(self.workers) if w.name not in busy), self.workers[-1])
        self.workers.remove(worker)
        if worker in self.joining:
            self.joining.remove(worker)
        # A warm shutdown: the running task finishes (and is acked) first; on its own thread,
        # as that can take the task's whole work_ms. Teardown waits for it.
        stopping = threading.Thread(target=worker.retire, name=f"stop-{worker.name}", daemon=True)
        stopping.start()
        self.stopping.append(stopping)
        self.ctx.emit("revoke", f"worker:{worker.name}", worker=worker.name, queue=queue, action="remove",
                      by_hand=True, reason=f"{worker.name} stops consuming {queue} (warm shutdown: its task finishes)")
        running = " after its running task" if worker.name in busy else ""
        return f"worker:{worker.name} stops{running}; {len(self.workers)} left on {queue}"

    @action("Restart worker", target="worker", hands_on=True)
    def on_restart(self, target: str) -> str:
        name = target.removeprefix("worker:")
        if len(self.workers) >= MAX_WORKERS:
            return f"at most {MAX_WORKERS} workers: {name} stays down"
        self.joining.append(self._spawn(name))
        return f"worker:{name} is starting again; it consumes orders as soon as it is up"

    def check_action(self, name: str, target: str, params: dict[str, Any]) -> dict[str, str]:
        workers = list(getattr(self, "workers", []))
        if name == "publish" and params["order"]:
            order_id = params["order"]
            with getattr(self, "_lock", threading.Lock()):
                placed = order_id in getattr(self, "sent_at", {})
            planned = re.fullmatch(r"order-(\d+)", order_id)
            if placed or (planned and 1 <= int(planned.group(1)) <= self.p["orders"]):
                return {"order": f"{order_id} is placed already (or planned): leave it empty for the next one"}
        if name in ("add_consumer", "restart") and len(workers) >= MAX_WORKERS:
            return {"queue" if name == "add_consumer" else "target": f"at most {MAX_WORKERS} workers per run"}
        if name == "remove_consumer" and len(workers) <= 1:
            return {"queue": "the last worker stays: add one before removing this one"}
        return {}

    def targets(self, action: str) -> list[str]:
        """Workers alive now (a killed one leaves the list; its replacement joins it); restart: the killed ones."""
        if action == "restart":
            return [f"worker:{name}" for name in self._restartable()]
        return [f"worker:{w.name}" for w in list(getattr(self, "workers", [])) if w.alive]

    def _restartable(self) -> list[str]:
        """Killed workers not started again (by restart) since."""
        live = {w.name for w in list(getattr(self, "workers", []))}
        names = [w.name for w in list(getattr(self, "killed", []))]
        return [n for i, n in enumerate(names) if n not in live and n not in names[:i]]

    def _next_order_id(self) -> str:
        with self._lock:
            taken = set(self.sent_at) | set(self.hand_orders)
        n = self.p["orders"] + len(self.hand_orders) + 1
        while f"order-{n}" in taken:
            n += 1
        return f"order-{n}"

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
        self._joined()

    def _timeout(self) -> float:
        orders = self.p["orders"] + len(self.hand_orders)
        return 30.0 + orders * self.p["work_ms"] / 1000.0 + (self.p["orders"] / self.p["rate"] if self.p["rate"] else 0.0)

    # -- workers ------------------------------------------------------------------------

    def _start_workers(self, count: int) -> None:
        """Start ``count`` workers side by side and wait until the broker sees them all consuming."""
        from ..celeryapp.workers import START_TIMEOUT_S

        started = [self._spawn() for _ in range(count)]
        if not self.amqp.embedded:
            self.ctx.wait_until(lambda: self._all_consuming(started), START_TIMEOUT_S, "the celery workers to consume",
                                tend=False)
        self._announce(started)

    def _spawn(self, name: str = "") -> Any:
        """One more worker, started (a process takes seconds to consume: ``_all_consuming`` says when)."""
        from ..celeryapp.workers import ProcessWorker, ThreadWorker

        self.worker_count += 1
        name = name or f"w{self.worker_count}"
        if self.amqp.embedded:
            worker: Any = ThreadWorker(name, self.ctx.run_id, self.app, self.task_queue)
        else:
            worker = ProcessWorker(name, self.ctx.run_id, self.amqp.url, self.task_queue.name)
        worker.start()
        self.workers.append(worker)
        return worker

    def _all_consuming(self, started: list[Any]) -> bool:
        for worker in started:
            if not worker.alive:
                raise RuntimeError(worker.failure())
        return self.amqp.embedded or self._consumers() >= len(self.workers)

    def _announce(self, started: list[Any], by_hand: bool = False) -> None:
        for worker in started:
            self.ctx.emit("assign", f"worker:{worker.name}", worker=worker.name, pid=worker.pid, queue="orders",
                          task=self.task_name, acks_late=self.p["acks_late"],
                          process="embedded thread" if self.amqp.embedded else "celery worker -P threads -c 1",
                          **({"by_hand": True} if by_hand else {}))

    def _joined(self) -> None:
        """On the run thread's ticks: announce the workers started by hand once the broker sees them consume."""
        if self.joining and self._all_consuming(self.joining):
            self._announce(self.joining, by_hand=True)
            self.joining = []

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
        if worker in self.joining:
            self.joining.remove(worker)  # killed before it was up: never announced
        with self._lock:
            running = [order for order, w in self.in_flight.items() if w == worker.name]
        signal = "thread killed (embedded stand-in for SIGKILL)" if self.amqp.embedded else "SIGKILL"
        if self.p["acks_late"]:
            # Said before the kill: RabbitMQ hands the task to another worker the moment the socket closes.
            for order in running:
                self.deliveries.expect_again("orders", order, (
                    f"redelivered: worker {worker.name} was killed ({signal}) while running the task; "
                    "with acks_late the task message was still unacked, so the broker requeued it"))
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

    def _place(self, conn: http.client.HTTPConnection, order_id: str, planned: bool = True) -> None:
        hand = {} if planned else {"planned": False, "by_hand": True}
        self.ctx.emit("request", "client", order_id, method="POST", path="/orders", **hand)
        started = time.perf_counter()
        with self._lock:
            self.sent_at[order_id] = started
        body = json.dumps({"id": order_id, "sent_at": time.time()}).encode()
        conn.request("POST", "/orders", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
        waited = round((time.perf_counter() - started) * 1000.0, 3)
        self.ctx.emit("response", "client", order_id, method="POST", path="/orders", status=response.status,
                      perceived_ms=waited, body=payload, **hand)
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
                if order in self.hand_orders:
                    common["planned"] = False
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
            if len(self.finished | self.abandoned) >= self.p["orders"] + len(self.hand_orders):
                self.settled.set()
            else:
                self.settled.clear()  # an order placed by hand after the others finished

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
                "placed_by_hand": list(self.hand_orders),
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
