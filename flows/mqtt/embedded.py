"""An amqtt broker running inside this process, on its own thread and event loop.

The fallback for embedded MQTT where no mosquitto binary is installed (``flows.transports.mqtt``);
it breaks some MQTT 3.1.1 rules, listed in ``flows.mqtt.caveats``.

The broker binds ``127.0.0.1:0`` and we read the port the kernel chose from the listening
socket, so there is no free-port race. amqtt marks every client that the stock
``AnonymousAuthPlugin`` lets in as *anonymous* and then never queues messages for its
persistent session (``clean_session`` false); :class:`OpenSessionsAuthPlugin` admits every
client without that mark, so persistent sessions behave as MQTT 3.1.1 describes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin

log = logging.getLogger(__name__)

# Seconds between $SYS publications; the stock default is 20, far too slow for a test that
# reads the broker's own counters before and after a run.
SYS_INTERVAL_S = 1


class OpenSessionsAuthPlugin(BaseAuthPlugin):
    """Admit every client as a named one, so its persistent session keeps queued messages."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Any) -> bool:
        session.is_anonymous = False
        return True


def broker_config(host: str = "127.0.0.1", port: int = 0) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            f"{__name__}.OpenSessionsAuthPlugin": {},
            "amqtt.plugins.sys.broker.BrokerSysPlugin": {"sys_interval": SYS_INTERVAL_S},
        },
    }


class EmbeddedAmqtt:
    """Start, locate and stop one amqtt broker on a private event-loop thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._stopped: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.port is not None

    def serving(self) -> bool:
        """Listening, checked in-process: a probe connection would only fill amqtt's log with warnings."""
        broker = self._broker
        if not self.running or broker is None:
            return False
        server = broker._servers.get("default")
        return bool(server is not None and server.instance.is_serving())

    def holds_connection(self, client_id: str) -> bool:
        """Whether amqtt still counts ``client_id`` as connected.

        amqtt notices a dropped socket a little late; a client reconnecting meanwhile takes
        over its session, which amqtt then marks offline when it gets to the old connection:
        everything published to it is queued, not sent, until it reconnects once more.
        A client coming back waits for this to turn false first.
        """
        broker = self._broker
        held = broker._sessions.get(client_id) if broker is not None else None
        return bool(held is not None and held[0].transitions.is_connected())

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name="amqtt-broker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"amqtt did not start within {timeout:g} s")
        if failure:
            self._thread.join(1.0)
            self._thread = None
            raise RuntimeError(f"amqtt failed to start: {failure[0]}") from failure[0]

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready, failure))
        finally:
            loop.close()
            self._loop = None
            self.port = None
            ready.set()

    async def _main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        from amqtt.broker import Broker

        self._stopped = asyncio.Event()
        try:
            broker = Broker(broker_config(self.host, 0), loop=asyncio.get_running_loop())
            await broker.start()
            server = broker._servers["default"].instance  # the only place amqtt keeps the bound socket
            self.port = server.sockets[0].getsockname()[1]
            self._broker = broker
        except Exception as exc:  # noqa: BLE001 - handed to the starting thread
            failure.append(exc)
            ready.set()
            return
        ready.set()
        await self._stopped.wait()
        try:
            await broker.shutdown()
        except Exception:  # shutting down; nothing left to protect
            log.warning("amqtt shutdown raised", exc_info=True)
        self._broker = None

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread, stopped = self._loop, self._thread, self._stopped
        if loop is None or thread is None or stopped is None:
            return
        try:
            loop.call_soon_threadsafe(stopped.set)
        except RuntimeError:  # loop already closed
            pass
        thread.join(timeout)
        self._thread = None
