"""How every benchmark prints a figure: the value, its goal, and whether it met it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    goal: str = ""
    ok: bool | None = None
    note: str = ""

    def line(self) -> str:
        value = "n/a" if self.value is None else (f"{self.value:,.0f}" if abs(self.value) >= 100 else f"{self.value:,.3g}")
        verdict = {True: "MET", False: "MISSED", None: ""}[self.ok]
        goal = f"  (goal: {self.goal})" if self.goal else ""
        note = f"  — {self.note}" if self.note else ""
        return f"{self.name}: {value} {self.unit}{goal} {verdict}{note}".rstrip()


class Report:
    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def add(self, name: str, value: float | None, unit: str, goal: str = "", ok: bool | None = None,
            note: str = "") -> Figure:
        figure = Figure(name, value, unit, goal, ok, note)
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure
