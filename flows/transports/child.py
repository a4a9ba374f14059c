"""A supervised child process: how the embedded brokers (Tansu, Mosquitto) run beside the app.

One class owns what both need, so neither repeats it:

* **It dies with us.** On Linux every child gets ``PR_SET_PDEATHSIG`` = SIGKILL, so a server
  killed with SIGKILL (no ``atexit``) does not leave a broker re-parented to PID 1 and
  holding a port. The kernel fires that signal when the *thread* that forked the child
  exits, not the process, and brokers are started from short-lived threads (a run's thread,
  a health check's background start). So every child is forked by one long-lived spawner
  thread that lives as long as the process. Elsewhere (macOS) children are still stopped
  by ``atexit`` on a normal exit; only a hard kill of the server can leave one behind.
* **Its exit is noticed at once.** A waiter thread blocks in ``wait()`` and reports an exit
  nobody asked for to ``on_exit`` with a sentence such as "exited with signal 9 (SIGKILL)".
* **It stops cleanly.** Its own process group gets SIGTERM, then SIGKILL after a grace.
* **Its log is at hand.** stdout and stderr go to a file whose tail start-up errors quote.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["ChildProcess", "ChildServer", "describe_exit", "free_port"]

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 4000
STOP_GRACE_S = 3.0
PR_SET_PDEATHSIG = 1


def describe_exit(code: int) -> str:
    """``exited with signal 9 (SIGKILL)`` or ``exited with status 1``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"exited with signal {-code}"
        return f"exited with signal {-code} ({name})"
    return f"exited with status {code}"


def free_port(host: str) -> int:
    """A TCP port that is free on ``host`` right now (a child may still lose it to a race)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ChildProcess:
    """One running child: spawned on construction, watched by a thread, stopped by ``stop()``.

    ``on_exit(how)`` is called on the waiter thread when the child exits without ``stop()``
    having been asked for; ``how`` is :func:`describe_exit`'s sentence.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.on_exit = on_exit
        self.exited = threading.Event()
        self.returncode: int | None = None
        self._stopping = False
        self._log_file: IO[bytes] | None = open(log_path, "wb")  # closed once the child is gone
        try:
            self.proc = _spawner.popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                **_session_kwargs(),
            )
        except BaseException:
            self._close_log()
            raise
        self.pid = self.proc.pid
        threading.Thread(target=self._wait, name=f"child-wait-{Path(self.argv[0]).name}-{self.pid}",
                         daemon=True).start()

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    def wait(self, timeout: float | None) -> bool:
        """True once the child has exited (and been reaped) within ``timeout``."""
        return self.exited.wait(timeout)

    def _wait(self) -> None:
        code = self.proc.wait()
        self.returncode = code
        self._close_log()
        self.exited.set()
        if not self._stopping and self.on_exit is not None:
            try:
                self.on_exit(describe_exit(code))
            except Exception:  # a listener's bug must not hide the exit
                log.exception("on_exit of %s raised", self.argv[0])

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace``; idempotent."""
        self._stopping = True
        if not self.exited.is_set():
            self._signal_group(signal.SIGTERM)
            if not self.exited.wait(grace):
                self._signal_group(getattr(signal, "SIGKILL", signal.SIGTERM))
                self.exited.wait(grace)

    def kill(self) -> None:
        """SIGKILL the child as a crash would (``on_exit`` still hears of it)."""
        if not self.exited.is_set():
            self._signal_group(getattr(signal, "SIGKILL", signal.SIGTERM))

    def _signal_group(self, sig: int) -> None:
        try:
            if os.name == "posix":
                os.killpg(self.pid, sig)  # its pgid is its pid: start_new_session
            else:
                self.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    def _close_log(self) -> None:
        log_file, self._log_file = self._log_file, None
        if log_file is not None:
            log_file.close()

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        return read_tail(self.log_path, limit)


class ChildServer:
    """What an embedded broker run as a ``ChildProcess`` keeps, whatever the broker.

    Subclasses spawn ``self._proc`` in ``start()`` (under ``self._lock``, after
    ``_begin_start()``), set ``_ready`` once it answers, and name themselves in ``title``
    for errors. ``on_exit(how)`` hears of a broker that was up and died without ``stop()``.
    """

    title = "broker"

    def __init__(self, host: str) -> None:
        self.host = host
        self.port: int | None = None
        self.startup_seconds: float | None = None
        # Called (on a watcher thread) when a started broker exits without stop(): "exited with ...".
        self.on_exit: Callable[[str], None] | None = None
        self._proc: ChildProcess | None = None
        self._workdir: Path | None = None
        self._ready = False
        self._lock = threading.RLock()
        self._atexit_registered = False

    @property
    def running(self) -> bool:
        """True once start() has seen the broker answer, and for as long as it is alive."""
        proc = self._proc
        return self._ready and proc is not None and proc.alive

    @property
    def pid(self) -> int | None:
        """The broker process's id (also its process group's), while there is one."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def _begin_start(self) -> None:
        # Stopped at a normal exit; unregistered by stop() so short-lived brokers (tests)
        # do not pile up exit handlers.
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def _end_stop(self) -> None:
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def _exited(self, how: str) -> None:
        # Only a broker that was up is news; one dying during start() is start()'s error.
        if self._ready and self.on_exit is not None:
            self.on_exit(how)

    def _kill_process(self) -> None:
        proc, self._proc = self._proc, None
        self._ready = False
        if proc is not None:
            proc.stop()

    def _log_tail(self) -> str:
        raise NotImplementedError

    def _fail(self, reason: str, cause: BaseException | None = None) -> None:
        """Tear down what start() made and raise with the broker's own last words."""
        tail = self._log_tail()
        where = self._workdir
        self.stop()
        message = f"embedded {self.title} failed to start: {reason}"
        if tail:
            message += f"\n--- tail of its log in {where} ---\n{tail}"
        raise RuntimeError(message) from cause

    def stop(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port} {'running' if self.running else 'stopped'}>"


def read_tail(path: Path | None, limit: int = LOG_TAIL_BYTES) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _session_kwargs() -> dict[str, Any]:
    if os.name != "posix":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {"start_new_session": True}  # own process group: killpg reaches it all
    if sys.platform.startswith("linux"):
        kwargs["preexec_fn"] = _die_with_parent_fn()
    return kwargs


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGKILL the child when its parent goes.

    ``prctl`` is looked up here, before the fork, so the child only makes one foreign call.
    """
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    sigkill = int(signal.SIGKILL)

    def die_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return die_with_parent


class _Spawner:
    """The one long-lived thread that forks every child (see the module doc: PDEATHSIG)."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[concurrent.futures.Future, tuple, dict]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="child-spawner", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._requests.put((future, args, kwargs))
        return future.result()

    def _serve(self) -> None:
        while True:
            future, args, kwargs = self._requests.get()
            try:
                future.set_result(subprocess.Popen(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)


_spawner = _Spawner()
