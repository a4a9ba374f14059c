"""The room socket ``/ws/rooms/<code>/``: the instructor moves, every follower follows.

Thin: decode a frame (``classroom.protocol``), check who may send it, act on the database
(``classroom.rooms``), tell the room's group on the channel layer. Protocol in
docs/contracts.md, "Classroom".
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from classroom import auth, protocol, rooms
from classroom.ratelimit import limiter
from classroom.views import STUDENT_KEY
from dashboard.consumers import CLOSE_NOT_FOUND, RunConsumer

ANSWER_BURST = 2


def group_name(code: str) -> str:
    return f"room.{code}"


def follow_frame(position: dict[str, Any]) -> dict[str, Any]:
    return {"type": "follow", **position}


class RoomConsumer(AsyncWebsocketConsumer):
    # The run socket's dispatch: no close_old_connections thread hop per frame (all database
    # work here goes through database_sync_to_async, which does that in its own thread).
    dispatch = RunConsumer.dispatch

    async def connect(self) -> None:
        self.code = rooms.normalize_code(self.scope["url_route"]["kwargs"]["code"])
        self.group = group_name(self.code)
        session = self.scope.get("session")
        token = auth.current_token()
        self.instructor = token is None or auth.session_is_instructor(session, token)
        student = session.get(STUDENT_KEY) if session is not None else None
        # Without the join page's session, each connection is its own anonymous student.
        self.student = student if isinstance(student, str) else secrets.token_hex(16)
        await self.accept()
        # Join before reading so no move falls between the read and the first broadcast.
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.joined = True
        state = await database_sync_to_async(self._state)()
        if state is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.joined = False
            await self._send({"type": "error", "error": f"no room with code {self.code}"})
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # A late joiner (or a reconnect) starts where the instructor is now.
        await self._send(follow_frame({k: state[k] for k in ("run", "seq", "playing", "speed", "message")}))
        if state["question"] is not None and not state["revealed"]:
            await self._send({"type": "ask", **state["question"]})
            if self.instructor:
                await self._send({"type": "answers", "count": state["answers"]})

    def _state(self) -> dict[str, Any] | None:
        room = rooms.find(self.code)
        return rooms.state(room) if room is not None else None

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not getattr(self, "joined", False):
            return
        try:
            frame = protocol.parse(text_data)
        except protocol.FrameError as exc:
            await self._refuse(str(exc))
            return
        if frame["type"] in protocol.INSTRUCTOR_TYPES and not self.instructor:
            await self._refuse(f"only the instructor may send {frame['type']}; you follow the instructor's screen")
            return
        await getattr(self, f"on_{frame['type']}")(frame)

    # -- client frames ----------------------------------------------------------------

    async def on_position(self, frame: dict[str, Any]) -> None:
        position = {k: v for k, v in frame.items() if k != "type"}
        if position["run"] != getattr(self, "known_run", None):
            if not await database_sync_to_async(rooms.run_exists)(position["run"]):
                await self._refuse(f"no run with id {position['run']}")
                return
            self.known_run = position["run"]
        if await database_sync_to_async(rooms.move)(self.code, position) is None:
            await self._refuse(f"room {self.code} no longer exists")
            return
        await self.channel_layer.group_send(self.group, {"type": "room.follow", "sender": self.channel_name,
                                                         "position": position})

    async def on_ask(self, frame: dict[str, Any]) -> None:
        if await database_sync_to_async(rooms.ask)(self.code, frame["question"], frame["choices"]) is None:
            await self._refuse(f"room {self.code} no longer exists")
            return
        await self.channel_layer.group_send(self.group, {"type": "room.ask", "question": frame["question"],
                                                         "choices": frame["choices"]})

    async def on_reveal(self, frame: dict[str, Any]) -> None:
        tally = await database_sync_to_async(rooms.reveal)(self.code)
        if tally is None:
            await self._refuse("there is no open question to reveal; ask one first")
            return
        await self.channel_layer.group_send(self.group, {"type": "room.reveal", "tally": tally})

    async def on_answer(self, frame: dict[str, Any]) -> None:
        rate = settings.FLOWS_RATE_ANSWERS_PER_S
        if not limiter("answers", rate, ANSWER_BURST).allow(f"{self.code}:{self.student}"):
            await self._refuse(f"too many answers: at most {rate:g} a second")
            return
        answered = await database_sync_to_async(rooms.answer)(self.code, self.student, frame["choice"])
        if not answered.counted:
            await self._refuse(answered.problem)
            return
        await self._send({"type": "answered", "choice": frame["choice"]})
        await self.channel_layer.group_send(self.group, {"type": "room.answers", "count": answered.count})

    # -- channel layer handlers ----------------------------------------------------------

    async def room_follow(self, message: dict) -> None:
        if message["sender"] != self.channel_name:  # the instructor knows where it is
            await self._send(follow_frame(message["position"]))

    async def room_ask(self, message: dict) -> None:
        await self._send({"type": "ask", "question": message["question"], "choices": message["choices"]})

    async def room_answers(self, message: dict) -> None:
        if self.instructor:  # answers are counted for the instructor; students see the tally at reveal
            await self._send({"type": "answers", "count": message["count"]})

    async def room_reveal(self, message: dict) -> None:
        await self._send({"type": "reveal", "tally": message["tally"]})

    # -- helpers ------------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    async def _refuse(self, reason: str) -> None:
        await self._send({"type": "error", "error": reason})
