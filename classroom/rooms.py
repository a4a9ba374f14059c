"""What rooms do, on the database: one place for the HTTP views and the room socket.

Synchronous ORM code; the socket calls it through ``database_sync_to_async``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count

from classroom.models import CODE_LENGTH, Answer, Room
from flows.models import Run

CREATE_ATTEMPTS = 5


def create_room(run: int | None = None) -> Room:
    # 31^6 ≈ 890 million codes: a clash is rare, and a retry settles it.
    for _ in range(CREATE_ATTEMPTS):
        try:
            with transaction.atomic():
                return Room.objects.create(run=run, seq=0)
        except IntegrityError:
            continue
    raise RuntimeError("no free room code after several attempts")


def normalize_code(code: str) -> str:
    return code.strip().upper()[: CODE_LENGTH + 1]


def find(code: str) -> Room | None:
    return Room.objects.filter(code=normalize_code(code)).first()


def run_exists(run: int) -> bool:
    return Run.objects.filter(pk=run).exists()


def state(room: Room) -> dict[str, Any]:
    """The room as anyone may read it: position, the open question and how many answered."""
    answered = Answer.objects.filter(room=room, question_no=room.question_no).count() if room.question_no else 0
    return {
        "code": room.code,
        "created_at": room.created_at.isoformat(),
        **room.position(),
        "question": {"question": room.question, "choices": room.choices} if room.question_no else None,
        "answers": answered,
        "revealed": room.revealed,
        "tally": tally(room) if room.revealed else None,
    }


def move(code: str, position: dict[str, Any]) -> Room | None:
    """Store where the instructor is; None if the room is gone."""
    fields = ("run", "seq", "playing", "speed", "message")
    updated = Room.objects.filter(code=code).update(**{f: position[f] for f in fields})
    return find(code) if updated else None


def ask(code: str, question: str, choices: list[str]) -> Room | None:
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(code=code).first()
        if room is None:
            return None
        room.question_no += 1
        room.question, room.choices, room.revealed = question, choices, False
        room.save(update_fields=["question_no", "question", "choices", "revealed"])
        return room


@dataclass(frozen=True)
class Answered:
    counted: bool  # False: refused, and ``problem`` says why
    count: int = 0
    problem: str = ""


def answer(code: str, student: str, choice: str) -> Answered:
    """Record one anonymous answer to the open question; a second one from a student counts nothing."""
    room = Room.objects.filter(code=code).first()
    if room is None or not room.asking:
        return Answered(False, problem="there is no open question to answer")
    if choice not in room.choices:
        return Answered(False, problem=f"choose one of: {', '.join(room.choices)}")
    try:
        with transaction.atomic():
            Answer.objects.create(room=room, question_no=room.question_no, student=student, choice=choice)
    except IntegrityError:
        return Answered(False, problem="you have already answered this question; your first answer counts")
    return Answered(True, count=Answer.objects.filter(room=room, question_no=room.question_no).count())


def tally(room: Room) -> dict[str, int]:
    counted = Answer.objects.filter(room=room, question_no=room.question_no).values("choice").annotate(n=Count("id"))
    given = {row["choice"]: row["n"] for row in counted}
    return {choice: given.get(choice, 0) for choice in room.choices}


def reveal(code: str) -> dict[str, int] | None:
    """Close the open question; its tally, or None when nothing is open."""
    room = Room.objects.filter(code=code).first()
    if room is None or not room.asking:
        return None
    room.revealed = True
    room.save(update_fields=["revealed"])
    return tally(room)
