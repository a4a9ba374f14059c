"""Actions on a run reach the process running it, whichever web process took the request.

A run executes in the web process that started it (``Run.owner`` is its ``host:pid``).
Behind a proxy a request to act on it may reach another process, which has nothing of the
run in memory. That process checks the request as usual, then hands it over the channel
layer to a channel named after the owner, and answers with what the owner said. Each
process listens on its own channel from a thread with its own event loop and its own
layer instance, so the listener shares no connection with daphne's loop.

Only a layer that crosses processes (Redis) relays; with the in-memory layer there is one
process and every live run is in it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from .runner import owner_id

log = logging.getLogger(__name__)

# How much longer than the owner's own wait for the run thread the asking side waits.
REPLY_MARGIN_S = 3.0

Handler = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def control_channel(owner: str) -> str:
    # Channel names allow letters, digits, "-", "_" and "." only, under 100 characters.
    return "flows-runs." + re.sub(r"[^A-Za-z0-9_.-]", "-", owner)[:80]


def crosses_processes() -> bool:
    from channels.layers import InMemoryChannelLayer, get_channel_layer

    layer = get_channel_layer()
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


def runs_elsewhere(owner: str) -> bool:
    """Whether a live run with this owner executes in another process we can reach."""
    return bool(owner) and owner != owner_id() and crosses_processes()


@dataclass
class Relayed:
    """A checked request for the run's owner; ``ask`` sends it and waits for the answer."""

    owner: str
    request: dict[str, Any]
    wait_s: float

    async def ask(self) -> tuple[int, dict[str, Any]]:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        reply_to = await layer.new_channel()
        await layer.send(control_channel(self.owner), {"type": "run.request", "reply_to": reply_to, **self.request})
        try:
            reply = await asyncio.wait_for(layer.receive(reply_to), self.wait_s + REPLY_MARGIN_S)
        except TimeoutError:
            return 503, {"errors": {"run": f"the process running run {self.request['run']} ({self.owner}) did not answer"}}
        return reply["status"], reply["body"]


class Listener:
    """Answers relayed requests for this process's runs with ``handler`` (on a worker thread)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.channel = control_channel(owner_id())
        self.thread = threading.Thread(target=self._run, name="run-relay", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from channels import DEFAULT_CHANNEL_LAYER
        from channels.layers import channel_layers

        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        tasks: set[asyncio.Task] = set()
        while True:
            try:
                message = await layer.receive(self.channel)
            except Exception:  # Redis went away for a moment: keep listening
                log.warning("run relay: receive failed", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            task = asyncio.create_task(self._answer(layer, message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _answer(self, layer: Any, message: dict[str, Any]) -> None:
        try:
            status, body = await sync_to_async(self.handler, thread_sensitive=False)(message)
        except Exception as exc:  # the asker gets an answer, whatever happened
            log.exception("run relay: answering %s failed", message.get("what"))
            status, body = 500, {"errors": {"run": f"{type(exc).__name__}: {exc}"}}
        await layer.send(message["reply_to"], {"type": "run.reply", "status": status, "body": body})


_listener: Listener | None = None


def start_listener(handler: Handler) -> None:
    """Once per serving process, when the channel layer crosses processes."""
    global _listener
    if _listener is None and crosses_processes():
        _listener = Listener(handler).start()
