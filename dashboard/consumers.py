"""The run WebSocket: replay from the database, then live batches, nothing lost or twice.

Protocol (docs/contracts.md, "WebSocket"): connect to ``/ws/runs/<id>/?after=SEQ``; the
server sends ``{"type": "events", "events": [...]}`` and ``{"type": "summary", "summary": {...}}``.
Clients acknowledge with ``{"type": "ack", "seq": N}``; a client more than
``FLOWS_WS_WINDOW`` events behind gets no live batches until it catches up, from the
database, so a client that stops reading costs the server bounded memory.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from flows import safejson
from flows.eventstore import read_events_json
from flows.models import Run
from flows.pipeline import MAX_FRAME_BYTES, get_pipeline, group_name
from flows.runner import get_runner

CATCH_UP_PAGE = 2000
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
# Clients send only acks (~30 characters); anything much longer is not a frame of this protocol.
MAX_CLIENT_FRAME = 4096
ACK_HELP = 'send {"type": "ack", "seq": N} with N a non-negative integer'


def parse_ack(text: str | None) -> int | None:
    """The seq of an ack frame, None for a frame of another type; ValueError saying what is wrong."""
    if text is None or len(text) > MAX_CLIENT_FRAME:
        raise ValueError(f"frames are JSON text of at most {MAX_CLIENT_FRAME} characters")
    message = safejson.loads(text)  # JsonInputError is a ValueError
    if not isinstance(message, dict):
        raise ValueError("a frame is a JSON object")
    if message.get("type") != "ack":
        return None
    seq = message.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"seq must be a non-negative integer, got {json.dumps(seq)[:40]}")
    return seq


class RunConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.group = group_name(self.run_id)
        self.window = settings.FLOWS_WS_WINDOW
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode("utf-8", errors="replace"))
        try:
            after = int(query.get("after", ["0"])[0])
            if not 0 <= after <= safejson.MAX_SAFE_INT:
                raise ValueError
        except ValueError:
            await self._fail(CLOSE_BAD_REQUEST, f"after must be an integer from 0 to {safejson.MAX_SAFE_INT}")
            return
        if self.run_id > safejson.MAX_SAFE_INT or not await database_sync_to_async(
            Run.objects.filter(pk=self.run_id).exists
        )():
            await self._fail(CLOSE_NOT_FOUND, f"no run with id {self.run_id}")
            return
        get_pipeline().attach_loop(asyncio.get_running_loop())
        # Join the group before reading the database so no batch falls between the two.
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.joined = True
        self.sent = self.acked = after
        self.behind = False
        await self._catch_up()
        await self._send_summary(await database_sync_to_async(get_runner().summary)(self.run_id))

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not getattr(self, "joined", False):
            return  # connect() refused this client and is closing it
        try:
            seq = parse_ack(text_data)
        except ValueError as exc:
            await self._fail(CLOSE_BAD_REQUEST, f"{exc}; {ACK_HELP}")
            return
        if seq is None:
            return
        self.acked = max(self.acked, min(seq, self.sent))
        if self.behind and self.sent - self.acked <= self.window // 2:
            self.behind = False
            await self._catch_up()

    async def dispatch(self, message: dict) -> None:
        # Channels' dispatch first runs close_old_connections through sync_to_async: a
        # thread hop for every batch and every ack, the biggest per-frame cost here. All
        # database access in this consumer goes through database_sync_to_async, which
        # closes old connections in its own worker thread, so the hop buys nothing.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # -- channel layer handlers --------------------------------------------------------

    async def run_events(self, message: dict) -> None:
        if self.behind:
            return
        first, last = message["first"], message["last"]
        if last <= self.sent:
            return
        if first > self.sent + 1:
            # A batch went missing (layer over capacity): the database has it.
            await self._catch_up()
            return
        if first <= self.sent:
            events = [e for e in json.loads(message["text"])["events"] if e["seq"] > self.sent]
            await self.send(text_data=json.dumps({"type": "events", "events": events}, separators=(",", ":")))
        else:
            await self.send(text_data=message["text"])
        self.sent = last
        self.behind = self.sent - self.acked > self.window

    async def run_summary(self, message: dict) -> None:
        summary = message["summary"]
        if not self.behind and (summary.get("last_seq") or 0) > self.sent:
            # A batch before this summary never reached us (layer over capacity) and no
            # later batch will reveal the gap: the database has it.
            await self._catch_up()
        await self._send_summary(summary)

    # -- helpers ----------------------------------------------------------------------

    async def _catch_up(self) -> None:
        pipeline = get_pipeline()
        while self.sent - self.acked <= self.window:
            recent = pipeline.recent_batch(self.run_id, self.sent)
            if recent is not None and recent[0] == self.sent + 1:
                # Still in memory, exactly as it went to everyone else.
                await self.send(text_data=recent[2])
                self.sent = recent[1]
                continue
            # From the database, already as JSON (no decode and re-encode of every event);
            # a page that ends where an in-memory batch ends lets the next step use memory.
            page = recent[1] - self.sent if recent is not None else CATCH_UP_PAGE
            # Bounded in bytes too, like live batches: a frame over the server's limit closes the socket.
            events, count, last = await database_sync_to_async(read_events_json)(
                self.run_id, self.sent, page, MAX_FRAME_BYTES
            )
            if not count:
                return
            await self.send(text_data='{"type":"events","events":' + events + "}")
            self.sent = last
        self.behind = True

    async def _send_summary(self, summary: dict) -> None:
        await self.send(text_data=json.dumps({"type": "summary", "summary": summary}, separators=(",", ":")))

    async def _fail(self, code: int, reason: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "error": reason}))
        await self.close(code=code)
