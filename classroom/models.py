"""A room: where the instructor's run page is, the open question, and its anonymous answers."""

from __future__ import annotations

import secrets

from django.db import models

# No 0/O, 1/I/L: a code read off a projector is typed without guessing.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


def new_room_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class Room(models.Model):
    code = models.CharField(max_length=CODE_LENGTH, unique=True, default=new_room_code)
    created_at = models.DateTimeField(auto_now_add=True)
    # Where the instructor is: a run id (not a key: retention may delete the run, the room
    # stays), the event seq shown, playing or paused, the speed, the inspector's message.
    run = models.BigIntegerField(null=True, blank=True)
    seq = models.BigIntegerField(default=0)
    playing = models.BooleanField(default=False)
    speed = models.FloatField(default=1.0)
    message = models.CharField(max_length=200, null=True, blank=True)
    # The question asked, numbered so answers to an earlier one never count for this one.
    question_no = models.PositiveIntegerField(default=0)
    question = models.CharField(max_length=300, blank=True, default="")
    choices = models.JSONField(default=list)
    revealed = models.BooleanField(default=False)

    def position(self) -> dict:
        return {"run": self.run, "seq": self.seq, "playing": self.playing, "speed": self.speed,
                "message": self.message}

    @property
    def asking(self) -> bool:
        return self.question_no > 0 and not self.revealed


class Answer(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="answers")
    question_no = models.PositiveIntegerField()
    # A random id the student's browser keeps in its session: anonymous, one answer each.
    student = models.CharField(max_length=64)
    choice = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "question_no", "student"], name="one_answer_per_student")]
