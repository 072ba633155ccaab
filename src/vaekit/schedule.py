"""Where an epoch stands in its run, by the clock that drives the schedule.

The learning-rate schedule and the KL warm-up are functions of a position counted in epochs. With
the ``epochs`` clock the position is the epoch's own number. With the ``budget`` clock (budgeted
training: Li, Yumer & Ramanan, "Budgeted Training", ICLR 2020) it is the fraction of the time budget
(``--max-minutes``) used so far, scaled to ``--epochs``, wherever that is further than the epoch's
number: a preset anneals fully in the epochs that fit its budget on whatever machine runs it, and
stops where the budget ends (or at ``--epochs``, whichever comes first). ``auto``: the budget clock
when a budget is set. The time used is saved with the run, so a resumed run continues where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CLOCKS = ("auto", "epochs", "budget")


def concrete_clock(tc) -> str:
    """``epochs`` or ``budget``: the clock that drives a run with train config ``tc``. The budget clock with no
    budget set (``max_minutes = 0``) counts epochs."""
    clock = ("budget" if tc.max_minutes else "epochs") if tc.schedule_clock == "auto" else tc.schedule_clock
    return clock if tc.max_minutes else "epochs"


@dataclass(frozen=True)
class Position:
    """An epoch's place in the run, in epochs of ``--epochs``: where it starts and where it is expected to
    end (with the budget clock the last epoch's seconds are the estimate), by ``clock``."""

    start: float
    end: float
    clock: str

    def fraction(self, epochs: int) -> float:
        return self.end / epochs


def position(tc, epoch: int, elapsed: float = 0.0, last_seconds: float = 0.0) -> Position:
    """The position of ``epoch`` (1-based) after ``elapsed`` seconds of training, the last epoch having taken
    ``last_seconds``. With the epochs clock it is exactly (epoch - 1, epoch)."""
    start, end, clock = epoch - 1, epoch, concrete_clock(tc)
    if clock == "budget":
        per_second = tc.epochs / (60 * tc.max_minutes)
        start, end = max(start, elapsed * per_second), max(end, (elapsed + last_seconds) * per_second)
    return Position(min(start, tc.epochs), min(end, tc.epochs), clock)


def learning_rate(tc, pos: Position) -> float:
    """The learning rate at ``pos``: constant, or cosine-annealed from ``lr`` to 0 over the run."""
    if tc.lr_schedule == "cosine":
        return tc.lr * 0.5 * (1 + math.cos(math.pi * pos.start / tc.epochs))
    return tc.lr


def describe(tc) -> str | None:
    """One line for the log when the budget clock drives the run, else None."""
    if concrete_clock(tc) != "budget":
        return None
    what = [w for w, on in (("the learning rate's cosine", tc.lr_schedule == "cosine"),
                            ("the KL warm-up", tc.warmup_epochs > 0)) if on]
    drives = f"{' and '.join(what)} and the stop" if what else "the stop"
    return (f"schedule: the budget clock drives {drives}: the fraction of the {tc.max_minutes:g} minutes used, "
            f"or of the {tc.epochs} epochs, whichever is further (--schedule-clock epochs to count epochs only)")


__all__ = ["CLOCKS", "Position", "concrete_clock", "describe", "learning_rate", "position"]
