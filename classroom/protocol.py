"""The room socket's client frames, checked: what each may carry and how big.

Pure functions (no database, no socket) so that every bound is tested on its own. A frame
that breaks a rule raises ``FrameError`` with a sentence for the client.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flows import safejson

# The biggest legitimate frame is an ask with MAX_CHOICES choices: well under this.
MAX_CLIENT_FRAME = 4096
MAX_QUESTION = 300
MAX_CHOICES = 8
MAX_CHOICE = 100
MAX_MESSAGE_ID = 200
MIN_SPEED, MAX_SPEED = 0.1, 10.0
INSTRUCTOR_TYPES = frozenset({"position", "ask", "reveal"})
TYPES = INSTRUCTOR_TYPES | {"answer"}


class FrameError(ValueError):
    """Why a client frame was refused, said to that client."""


def parse(text: str | None) -> dict[str, Any]:
    """A client frame as a checked dict with its ``type``; FrameError when it is not one."""
    if text is None or len(text) > MAX_CLIENT_FRAME:
        raise FrameError(f"frames are JSON text of at most {MAX_CLIENT_FRAME} characters")
    try:
        frame = safejson.loads(text)
    except safejson.JsonInputError as exc:
        raise FrameError(str(exc)) from None
    if not isinstance(frame, dict):
        raise FrameError("a frame is a JSON object with a type")
    kind = frame.get("type")
    if kind not in TYPES:
        raise FrameError(f"unknown type {json.dumps(kind)[:40]}; send one of {', '.join(sorted(TYPES))}")
    return {"type": kind, **CHECKS[kind](frame)}


def _int(frame: dict, name: str, low: int, nullable: bool = False) -> int | None:
    value = frame.get(name)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= safejson.MAX_SAFE_INT:
        raise FrameError(f"{name} must be an integer from {low} to {safejson.MAX_SAFE_INT}")
    return value


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise FrameError(f"{name} must be a non-empty string of at most {limit} characters")
    return value.strip()


def position(frame: dict) -> dict[str, Any]:
    playing = frame.get("playing")
    if not isinstance(playing, bool):
        raise FrameError("playing must be true or false")
    speed = frame.get("speed")
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed) \
            or not MIN_SPEED <= speed <= MAX_SPEED:
        raise FrameError(f"speed must be a number from {MIN_SPEED} to {MAX_SPEED}")
    message = frame.get("message")
    if isinstance(message, int) and not isinstance(message, bool):
        message = str(message)
    if message is not None:
        message = _text(message, "message", MAX_MESSAGE_ID)
    return {"run": _int(frame, "run", 1), "seq": _int(frame, "seq", 0), "playing": playing,
            "speed": float(speed), "message": message}


def ask(frame: dict) -> dict[str, Any]:
    question = _text(frame.get("question"), "question", MAX_QUESTION)
    choices = frame.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
        raise FrameError(f"choices must be a list of 2 to {MAX_CHOICES} strings")
    checked = [_text(c, "each choice", MAX_CHOICE) for c in choices]
    if len(set(checked)) != len(checked):
        raise FrameError("choices must differ from each other")
    return {"question": question, "choices": checked}


def reveal(frame: dict) -> dict[str, Any]:
    return {}


def answer(frame: dict) -> dict[str, Any]:
    return {"choice": _text(frame.get("choice"), "choice", MAX_CHOICE)}


CHECKS = {"position": position, "ask": ask, "reveal": reveal, "answer": answer}
