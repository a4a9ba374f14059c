"""An embedded Mosquitto: the real MQTT broker, run as a child process on loopback.

Used for embedded MQTT whenever a ``mosquitto`` binary is found (``MOSQUITTO_BIN``, else
``PATH``, else the usual sbin directories, which a non-root ``PATH`` often lacks); only
without one does the app fall back to the in-process amqtt, which breaks several MQTT
3.1.1 rules (``flows.mqtt.caveats``). ``MOSQUITTO_BIN=`` (empty) forces that fallback.

The generated configuration keeps the lesson honest and the broker private: a listener on
127.0.0.1 only, anonymous clients (nobody else can reach it), no persistence (every start is
a clean broker, like Tansu's), ``$SYS`` counters every second (``flows.mqtt.sys_counters``
reads them before and after a run), and room to queue every message a persistent session
can miss in one run.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from .child import ChildProcess, ChildServer, free_port, read_tail

__all__ = ["MosquittoProcess", "find_binary"]

ENV_VAR = "MOSQUITTO_BIN"
# Package managers install the broker under sbin (Debian: /usr/sbin, Homebrew: …/sbin).
_SBIN_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
_CONF_NAME = "mosquitto.conf"
_LOG_NAME = "mosquitto.log"  # the broker's own log: flushed per line, unlike its buffered stdout
_OUT_NAME = "mosquitto.out"  # stdout and stderr: what it says before its log is open
_PORT_ATTEMPTS = 3
_POLL_INTERVAL = 0.02
_READY_LINE = " running"  # "mosquitto version 2.0.11 running", logged once every listener is open
SYS_INTERVAL_S = 1
# mqtt-qos lets up to 5000 messages be published while a persistent subscriber is away.
MAX_QUEUED_MESSAGES = 10_000


def find_binary() -> str | None:
    """The mosquitto executable to run, or None (then embedded MQTT falls back to amqtt)."""
    configured = os.environ.get(ENV_VAR)
    if configured is not None:
        return configured if configured and _executable(configured) else None
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in _SBIN_CANDIDATES if _executable(path)), None)


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def config_text(host: str, port: int, log_path: Path) -> str:
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence false",
        f"sys_interval {SYS_INTERVAL_S}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"log_dest file {log_path}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, Mosquitto switches to the "mosquitto" user, and the kernel clears
        # PR_SET_PDEATHSIG on that credential change: it would outlive a killed server.
        lines.append("user root")
    return "\n".join(lines) + "\n"


class MosquittoProcess(ChildServer):
    """Start, locate and stop one Mosquitto on a free loopback port (temporary work dir)."""

    title = "Mosquitto"

    def __init__(self, binary: str, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.binary = binary

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._workdir / _LOG_NAME if self._workdir is not None else None

    def start(self, timeout: float = 10.0) -> None:
        """Spawn the broker and block until it listens; a no-op while it runs."""
        with self._lock:
            if self.running:
                return
            self.stop()  # a previous broker that died on its own: free its dir
            began = time.perf_counter()
            deadline = time.monotonic() + timeout
            self._workdir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
            self._begin_start()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                self.port = free_port(self.host)
                conf = self._workdir / _CONF_NAME
                conf.write_text(config_text(self.host, self.port, self._workdir / _LOG_NAME))
                self._ready = False
                try:
                    self._proc = ChildProcess([self.binary, "-c", str(conf)], cwd=self._workdir,
                                              log_path=self._workdir / _OUT_NAME, on_exit=self._exited)
                    if self._wait_ready(deadline):
                        break
                except Exception as exc:  # noqa: BLE001 - re-raised with the broker log attached
                    self._fail(str(exc), exc)
                # Another process took the port between our probe and the broker's bind.
                if attempt == _PORT_ATTEMPTS or time.monotonic() >= deadline:
                    self._fail(f"port {self.port} on {self.host} was taken {attempt} times")
            self._ready = True
            self.startup_seconds = time.perf_counter() - began

    def _wait_ready(self, deadline: float) -> bool:
        """True once ours listens; False if it lost the port; raises on any other failure."""
        assert self._proc is not None and self.port is not None
        while True:
            if not self._proc.alive:
                tail = self._log_tail()
                if "Address already in use" in tail:
                    return False
                raise RuntimeError(f"mosquitto exited during start-up ({self._proc.returncode})")
            if _READY_LINE in read_tail(self.log_path):
                # Ours said it listens (not someone else's port answering) and is still alive.
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return True
            if time.monotonic() >= deadline:
                raise TimeoutError(f"mosquitto on {self.host}:{self.port} did not start listening in time")
            self._proc.wait(_POLL_INTERVAL)

    def _log_tail(self) -> str:
        if self._workdir is None:
            return ""
        return "\n".join(t for t in (read_tail(self._workdir / _OUT_NAME), read_tail(self.log_path)) if t)

    def stop(self) -> None:
        """Terminate the broker and remove its work dir; idempotent, safe from atexit."""
        with self._lock:
            self._kill_process()
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self._end_stop()
