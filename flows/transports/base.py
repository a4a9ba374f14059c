"""The narrow interface every broker implements.

A broker knows its mode (embedded or external), its URL, how to start and stop itself
when embedded, and how to tell whether it is reachable. Workflows ask it for URLs and
clients; the web layer only ever sees ``describe()`` and ``health()``.

An embedded broker that runs as a child process reports its own death: from that moment
``down_reason()`` names it ("embedded Kafka broker (Tansu) exited with signal 9 (SIGKILL)"),
``health()`` says so and the listeners added with ``add_down_listener`` hear of it, until
the next successful ``start()``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """A broker could not be reached; the message says which, where and why."""


class Broker:
    protocol: str = ""
    embedded_name: str = ""
    external_name: str = ""

    def __init__(self, mode: str, external_url: str) -> None:
        if mode not in ("embedded", "external"):
            raise ValueError(f"broker mode must be embedded or external, not {mode!r}")
        self.mode = mode
        self.external_url = external_url
        self._start_lock = threading.Lock()
        self._start_error: str | None = None
        self._starting: threading.Thread | None = None
        self._down_reason: str | None = None
        self._down_listeners: list[Callable[[str], None]] = []
        self._down_lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        return self.mode == "embedded"

    @property
    def name(self) -> str:
        return self.embedded_name if self.embedded else self.external_name

    @property
    def url(self) -> str:
        return self.external_url

    # -- lifecycle (embedded brokers override) ----------------------------------------

    def start(self) -> None:
        """Make the broker usable; blocking. External brokers need nothing."""

    def stop(self) -> None:
        """Release what ``start`` made."""

    def start_in_background(self) -> None:
        """Begin ``start`` without waiting, so a health view can answer at once."""
        with self._start_lock:
            if self._starting is not None:
                return
            self._starting = threading.Thread(target=self._start_quietly, name=f"start-{self.protocol}", daemon=True)
            self._starting.start()

    def _start_quietly(self) -> None:
        try:
            self.start()
            self._start_error = None
        except Exception as exc:  # noqa: BLE001 - reported by health()
            self._start_error = str(exc)
        finally:
            with self._start_lock:
                self._starting = None

    # -- death and resurrection (embedded child processes) -----------------------------

    def down_reason(self) -> str | None:
        """Why the broker is down since it died on its own, or None; cheap (no I/O)."""
        return self._down_reason

    def add_down_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(reason)`` (on a watcher thread) when the broker dies on its own."""
        with self._down_lock:
            self._down_listeners.append(listener)

    def remove_down_listener(self, listener: Callable[[str], None]) -> None:
        with self._down_lock:
            if listener in self._down_listeners:
                self._down_listeners.remove(listener)

    def _went_down(self, reason: str) -> None:
        with self._down_lock:
            self._down_reason = reason
            listeners = list(self._down_listeners)
        log.warning("%s", reason)
        for listener in listeners:
            try:
                listener(reason)
            except Exception:  # noqa: BLE001 - one listener's bug must not silence the others
                log.exception("down listener of %s raised", self.protocol)

    def _came_up(self) -> None:
        with self._down_lock:
            self._down_reason = None

    # -- reachability ---------------------------------------------------------------

    def probe(self, timeout: float = 1.0) -> None:
        """Cheap liveness of an external broker: its port accepts a TCP connection.

        Raises BrokerUnavailable. Embedded brokers live in this process or report their own
        death (``down_reason``), so there is nothing to probe.
        """
        if self.embedded:
            return
        errors = []
        for address in [a.strip() for a in self.external_url.split(",") if a.strip()]:
            try:
                tcp_check(address, self.default_port, timeout, self.name)
                return
            except BrokerUnavailable as exc:
                errors.append(str(exc))
        raise BrokerUnavailable("; ".join(errors) or f"{self.name}: no address in {self.external_url!r}")

    def check(self, timeout: float = 3.0) -> None:
        """Raise BrokerUnavailable unless the broker answers within ``timeout``."""
        tcp_check(self.url, self.default_port, timeout, self.name)

    default_port: int = 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "mode": self.mode}

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        info: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            reason = self.down_reason()
            if reason is not None:
                # Say how it died, and bring it back for whoever comes next.
                self.start_in_background()
                raise BrokerUnavailable(f"{reason}; {self._restart_note()}")
            self.check(timeout)
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            info.update(ok=False, error=str(exc))
        else:
            info.update(ok=True, error="")
        info["checked_ms"] = round((time.perf_counter() - started) * 1000, 1)
        # Described after the check, which may have started the broker (its URL is known then).
        return {**self.describe(), **info}

    def _restart_note(self) -> str:
        error = self._start_error
        return f"restarting failed: {error}" if error else "restarting"


def tcp_check(url: str, default_port: int, timeout: float, name: str) -> None:
    """The cheapest honest reachability test: the broker's port accepts a connection."""
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise BrokerUnavailable(f"{name} at {host}:{port} is not reachable: {exc.strerror or exc}") from None
