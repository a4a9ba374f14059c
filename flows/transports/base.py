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


# A broker URL that names no address but the broker this app runs itself (kombu-style:
# ``AMQP_URL=memory://``, ``KAFKA_BOOTSTRAP_SERVERS=embedded``); either spelling works for any
# protocol. Every other URL is an external broker's address.
EMBEDDED_URLS = frozenset({"embedded", "memory://"})


def is_embedded_url(url: str) -> bool:
    return url.strip().lower() in EMBEDDED_URLS


def mode_of(url: str) -> str:
    """``embedded`` or ``external``: what a broker URL setting asks for."""
    return "embedded" if is_embedded_url(url) else "external"


class BrokerUnavailable(RuntimeError):
    """A broker could not be reached; the message says which, where and why."""


class Broker:
    protocol: str = ""
    embedded_name: str = ""
    external_name: str = ""
    # What an external URL may look like: its schemes, whether a bare ``host:port`` will do,
    # whether several comma-separated addresses will (Kafka's bootstrap list).
    url_schemes: tuple[str, ...] = ()
    bare_addresses: bool = False
    address_list: bool = False

    @classmethod
    def url_problem(cls, url: str) -> str | None:
        """Why ``url`` cannot name this protocol's broker (for the system checks), or None."""
        if is_embedded_url(url):
            return None
        for address in url.split(",") if cls.address_list else [url]:
            address = address.strip()
            if not address:
                return "names no address"
            scheme = address.split("://", 1)[0].lower() if "://" in address else ""
            if scheme and scheme not in cls.url_schemes:
                allowed = ", ".join(f"{s}://" for s in cls.url_schemes) or "none (give host:port)"
                return f"has the scheme {scheme}://, which is not one of {allowed}"
            if not scheme and not cls.bare_addresses:
                return f"{address!r} has no scheme ({', '.join(f'{s}://' for s in cls.url_schemes)})"
            parsed = urlparse(address if scheme else f"tcp://{address}")
            try:
                parsed.port  # noqa: B018 - urllib checks the port only when it is read
            except ValueError:
                return f"{address!r} has a port that is not a number from 0 to 65535"
            if not parsed.hostname and scheme != "unix":
                return f"{address!r} names no host"
        return None

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
            except Exception:  # one listener's bug must not silence the others
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


def port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether something accepts a TCP connection on ``host:port`` within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
