"""Progress of a pruning search (pure): one line per step on the console and in ``DIR/pruning/search.log``.

A step line reads (the fields separated by `` | ``)::

    [greedy] step 3: c2 -> 12 ch | fps 12,345 | val_acc 0.9512 | ft 0.1 ep | elapsed 0:42 | left ~1:30 (<= 6 steps)

``phase`` is ``greedy`` (an accepted step of the greedy/J trajectory, numbered as in the report's ``history``),
``rejected`` (a greedy step undone, the report's ``rejected``), ``uniform`` (one of ``pruning.iterations``
uniform steps), ``backtrack`` (a final fine-tune of a trajectory step) or ``final`` (the chosen model's final
fine-tune). ``elapsed`` counts from the stage's start; ``left`` is the current phase's mean time per step so far times the steps still to come: exact for the uniform
iterations, an upper bound (``<=``) for a budget search (``max_steps`` or the candidates left), an extrapolation
of the FPS gained per step for an FPS target. :func:`parse_step_line` reads a line back (tests, tools).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SearchLog", "StepLine", "parse_step_line", "steps_left_bound", "steps_to_target", "clock"]


def clock(seconds: float) -> str:
    """``seconds`` as ``m:ss`` (or ``h:mm:ss``)."""
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _seconds(text: str) -> float:
    parts = [int(p) for p in text.split(":")]
    return float(sum(p * 60 ** i for i, p in enumerate(reversed(parts))))


def steps_left_bound(counts: Mapping[str, int], candidates: Mapping[str, Sequence[int]], frozen: set[str],
                     steps_done: int, max_steps: int) -> int:
    """At most how many greedy steps are left: ``max_steps`` minus those done, and no more than the candidate
    lowerings left on the knobs not frozen."""
    lowerings = sum(sum(1 for c in candidates[g] if c < counts[g]) for g in candidates if g not in frozen)
    return max(0, min(max_steps - steps_done, lowerings))


def steps_to_target(fps0: float, fps_now: float, target: float, steps_done: int) -> int | None:
    """Steps an FPS target still needs if each step keeps multiplying the FPS by its mean factor so far (None
    while no step has raised the FPS)."""
    if fps_now >= target:
        return 0
    if steps_done <= 0 or fps0 <= 0 or fps_now <= fps0:
        return None
    per_step = math.log(fps_now / fps0) / steps_done
    return math.ceil(math.log(target / fps_now) / per_step)


@dataclass(frozen=True)
class StepLine:
    """One step of a search as :class:`SearchLog` writes it."""

    phase: str
    index: int
    changed: str
    value: int | float | None
    fps: float | None
    accuracy: float
    epochs: float
    elapsed: float
    left: float | None = None
    steps_left: int | None = None
    bound: bool = False

    def text(self) -> str:
        unit = "bits" if self.changed.startswith("bits:") else ("ch" if isinstance(self.value, int) else "")
        what = f"{self.changed} -> {self.value} {unit}".rstrip() if self.value is not None else self.changed
        fps = f"{self.fps:,.0f}" if self.fps is not None else "-"
        if self.left is None:
            left = "left ?"
        else:
            n = "" if self.steps_left is None else f" ({'<= ' if self.bound else ''}{self.steps_left} steps)"
            left = f"left ~{clock(self.left)}{n}"
        return (f"[{self.phase}] step {self.index}: {what} | fps {fps} | val_acc {self.accuracy:.4f} | "
                f"ft {self.epochs:g} ep | elapsed {clock(self.elapsed)} | {left}")


_LINE = re.compile(
    r"^\[(?P<phase>\w+)\] step (?P<index>\d+): (?P<what>.*?) \| fps (?P<fps>[\d,]+|-) \| "
    r"val_acc (?P<acc>[\d.]+) \| ft (?P<ep>[\d.e+-]+) ep \| elapsed (?P<el>[\d:]+) \| left (?P<left>.*)$")


def parse_step_line(line: str) -> dict[str, Any] | None:
    """The fields of a step line (None for any other line of search.log): phase, index, changed, value, fps,
    accuracy, epochs, elapsed (s), left (s, or None), steps_left (the count in brackets, or None)."""
    m = _LINE.match(line.strip())
    if m is None:
        return None
    what = m["what"].split(" -> ")
    value = what[1].split()[0] if len(what) > 1 else None
    left = re.match(r"~([\d:]+)", m["left"])
    steps = re.search(r"\((?:<= )?(\d+) steps\)", m["left"])
    return {
        "phase": m["phase"], "index": int(m["index"]), "changed": what[0],
        "value": (float(value) if "." in value else int(value)) if value is not None else None,
        "fps": None if m["fps"] == "-" else float(m["fps"].replace(",", "")), "accuracy": float(m["acc"]),
        "epochs": float(m["ep"]), "elapsed": _seconds(m["el"]), "left": _seconds(left[1]) if left else None,
        "steps_left": int(steps[1]) if steps else None,
    }


@dataclass
class SearchLog:
    """Where a pruning run's progress goes: every line to ``say`` (the console) and appended to ``path``
    (``search.log``); :meth:`step` times the steps and estimates what is left."""

    path: Path | None
    say: Callable[[str], None] | None = None
    now: Callable[[], float] = time.monotonic
    start: float = field(default=-1.0)  # the stage's start: ``elapsed`` counts from here
    t0: float = field(default=-1.0)  # the current phase's start: its steps are timed from here
    steps: int = 0

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.now()
        if self.t0 < 0:
            self.t0 = self.start

    def line(self, text: str) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(text + "\n")
        if self.say is not None:
            self.say(text)

    def restart(self, text: str) -> None:
        """A new search (or phase) begins: ``text`` is its header line; steps are timed from here."""
        self.t0, self.steps = self.now(), 0
        self.line(text)

    def step(self, phase: str, index: int, changed: str, value: int | float | None, fps: float | None,
             accuracy: float, epochs: float, *, steps_left: int | None = None, bound: bool = False) -> StepLine:
        """Write one step line; ``steps_left`` (None: unknown) and the mean time per step give ``left``."""
        self.steps += 1
        now = self.now()
        left = None if steps_left is None else (now - self.t0) / self.steps * steps_left
        rec = StepLine(phase, index, changed, value, fps, accuracy, epochs, now - self.start, left, steps_left, bound)
        self.line(rec.text())
        return rec
