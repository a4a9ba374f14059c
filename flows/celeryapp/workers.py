"""Celery workers a run starts, kills and stops: a real process on RabbitMQ, a thread embedded.

* ``ProcessWorker``: ``celery -A flows.celeryapp worker -P threads -c 1`` as a child
  process. The task runs in a thread of the worker process, so SIGKILL takes the task, the
  worker and its broker connection down at once, and RabbitMQ requeues an unacked
  (``acks_late``) task. Two pools that look simpler teach the wrong thing: with ``solo``
  the task blocks the worker's event loop, so even an "early" ack only reaches the broker
  after the task returned; with ``prefork``, killing the child that runs a task makes the
  parent report WorkerLostError and *ack* the task as failed.
* ``ThreadWorker``: a Celery worker in this process (embedded mode; the memory broker
  cannot be reached from another process). Killing it makes the running task raise
  ``WorkerKilled`` at its next pause: the worker terminates without acking and its
  channel closes, so the embedded broker requeues the task as RabbitMQ would.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import tasks

log = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def short_name(hostname: str) -> str:
    """``w2.run42@host`` → ``w2``: the name the dashboard shows."""
    return hostname.split("@", 1)[0].split(".", 1)[0]


class Worker:
    """What both kinds are: a name, the Celery hostname that carries it, the queue they consume."""

    def __init__(self, name: str, run_id: int, host: str, queue: Any) -> None:
        self.name = name
        self.hostname = f"{name}.run{run_id}@{host}"  # short_name() reads the name back
        self.queue = queue


class ProcessWorker(Worker):
    def __init__(self, name: str, run_id: int, broker_url: str, queue: str) -> None:
        super().__init__(name, run_id, "%h", queue)
        self.broker_url = broker_url
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix=f"celery-{name}-run{run_id}-", suffix=".log", delete=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "flows.celeryapp", "worker", "-P", "threads", "-c", "1",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", self.hostname, "-Q", self.queue,
                "-l", "WARNING"]

    def start(self) -> None:
        env = {
            **os.environ,
            "FLOWS_CELERY_BROKER_URL": self.broker_url,
            "FLOWS_CELERY_QUEUE": self.queue,
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "DATABASE_URL": database_url(),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH", "")])),
        }
        # Its own session: a Ctrl-C in the dashboard's terminal must not reach the worker first.
        self.proc = subprocess.Popen(self.command(), cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no ack, the socket closed by the kernel."""
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT_S)

    def retire(self) -> None:
        """Removed by hand: a warm shutdown (SIGTERM) finishes the running task, acks it, and exits."""
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the task, then exit
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def failure(self) -> str:
        """Why the process is gone, from the tail of its log."""
        try:
            tail = Path(self._log.name).read_text(errors="replace")[-1500:]
        except OSError:
            tail = ""
        code = self.proc.poll() if self.proc else None
        return f"celery worker {self.name} exited with status {code}: {tail.strip()}"


class ThreadWorker(Worker):
    def __init__(self, name: str, run_id: int, app: Any, queue: Any) -> None:
        super().__init__(name, run_id, "embedded", queue)
        self.app = app
        self.worker: Any = None
        self.thread: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        from celery.contrib.testing.worker import TestWorkController

        self.app.amqp.queues.add(self.queue)
        # No event loop (the memory transport has none anyway): on RabbitMQ, Celery's event loop
        # with the solo pool leaves the next message, read ahead into py-amqp's buffer with the
        # last ack, waiting for the loop's 1 s poll timeout; the plain loop drains it at once.
        self.worker = TestWorkController(
            app=self.app, concurrency=1, hostname=self.hostname, pool="solo", loglevel="WARNING", logfile=None,
            ready_callback=None, without_heartbeat=True, without_mingle=True, without_gossip=True,
            queues=[self.queue.name], use_eventloop=False)
        self.thread = threading.Thread(target=self._main, name=f"celery-{self.hostname}", daemon=True)
        self.thread.start()
        if not self.worker._on_started.wait(START_TIMEOUT_S):
            raise TimeoutError(f"embedded celery worker {self.name} did not start in {START_TIMEOUT_S:g} s")

    def _main(self) -> None:
        ident = threading.get_ident()
        tasks.embedded_worker_started(ident, self.name)
        try:
            self.worker.start()
        finally:
            tasks.embedded_worker_stopped(ident)
            from django.db import connection

            connection.close()

    def kill(self) -> None:
        if not self.alive:
            return
        tasks.kill_embedded(self.thread.ident)
        self.thread.join(2.0)
        if self.alive:  # idle: no task to die in; an idle worker holds nothing unacked
            self.worker.terminate(in_sighandler=False)
            self.thread.join(STOP_TIMEOUT_S)

    def retire(self) -> None:
        """Removed by hand, as a warm shutdown would: no new task starts here (acks_late ones go
        back to the queue), the running one finishes and is acked, then the worker stops.

        Stopping from another thread closes the worker's channel at once, so it waits for the
        worker to be idle first: no task running and nothing unacked on its channel.
        """
        ident = self.thread.ident if self.thread is not None else None
        if ident is not None:
            tasks.retire_embedded(ident)
            deadline = time.monotonic() + STOP_TIMEOUT_S * 3
            while self.alive and time.monotonic() < deadline and (tasks.busy_embedded(ident) or self._holds_unacked()):
                time.sleep(tasks.SLICE_S)  # polling the worker's state with a deadline
        self.stop()

    def _holds_unacked(self) -> bool:
        try:
            return not self.worker.consumer.task_consumer.channel.qos.can_consume()
        except AttributeError:  # not consuming (yet, or any more)
            return False

    def stop(self) -> None:
        if self.alive:
            self.worker.stop(in_sighandler=False)
            self.thread.join(STOP_TIMEOUT_S)
        self.app.amqp.queues.pop(self.queue.name, None)

    def stop_on_its_thread(self) -> None:
        """Ask for a warm shutdown done by the worker's own thread, and return at once (``join`` waits).

        ``stop`` works from another thread on the memory transport, but a py-amqp connection
        is not thread-safe: cancelling the consumer from here while the worker's thread reads
        the same socket mixes up their frames. The worker runs the request at its loop's next
        turn: after the task in hand, or within its 2 s wait for the next message.
        """
        if self.alive:
            self.worker.consumer.call_soon(_shut_down)

    def join(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def failure(self) -> str:
        return f"embedded celery worker {self.name} stopped"


def _shut_down() -> None:
    from celery.exceptions import WorkerShutdown

    raise WorkerShutdown(0)  # out of the worker's loop, into its warm shutdown, on its own thread


def database_url() -> str:
    """This process's database as a DATABASE_URL, so a worker process writes to the same one."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        auth = quote(s.get("USER") or "", safe="")
        if s.get("PASSWORD"):
            auth += ":" + quote(s["PASSWORD"], safe="")
        host = s.get("HOST") or "127.0.0.1"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{s['NAME']}"
    raise RuntimeError(f"a celery worker process cannot reach a {connection.vendor} database")
