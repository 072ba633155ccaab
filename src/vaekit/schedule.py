"""Where an epoch stands in its run, by the clock that drives the schedule.

The learning-rate schedule is a function of a position counted in epochs. With
the ``epochs`` clock the position is the epoch's own number. With the ``budget`` clock (budgeted
training: Li, Yumer & Ramanan, "Budgeted Training", ICLR 2020) it is the fraction of the time budget
(``--max-minutes``) used so far, scaled to ``--epochs``, wherever that is further than the epoch's
number: a preset anneals fully in the epochs that fit its budget on whatever machine runs it, and
stops where the budget ends (or at ``--epochs``, whichever comes first). The KL warm-up counts the
epochs trained on both clocks, and on the budget clock ends by half the run (:func:`warmup_position`). ``auto``: the budget clock
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


WARMUP_SHARE_MAX = 0.5  # on the budget clock the KL warm-up ends by half the run, however few epochs fit


def warmup_position(tc, epoch: int, pos: Position) -> float:
    """Where ``epoch`` stands in the KL warm-up, in epochs of ``--warmup-epochs``: the warm-up counts the epochs
    trained, on either clock (what it protects, the networks learning to use the latent code before the KL
    presses on it, takes optimisation steps, not a share of the run); on the budget clock it also ends by
    :data:`WARMUP_SHARE_MAX` of the run, so a machine that fits few epochs still trains its second half on the
    full ELBO. Measured on the quality preset in float32 on an AVX2 CPU (66 epochs in 10 minutes): a warm-up
    scaled to the budget (30 of 260 epochs, so 7.6 epochs there) left fewer latent dimensions in use (KL 21.7
    against 25.3 nats) and a valid ELBO 2 nats worse than the 30 epochs of the epochs clock."""
    if pos.clock != "budget" or not tc.warmup_epochs:
        return float(epoch)
    return max(float(epoch), tc.warmup_epochs * pos.end / (WARMUP_SHARE_MAX * tc.epochs))


def learning_rate(tc, pos: Position) -> float:
    """The learning rate at ``pos``: constant, or cosine-annealed from ``lr`` to 0 over the run."""
    if tc.lr_schedule == "cosine":
        return tc.lr * 0.5 * (1 + math.cos(math.pi * pos.start / tc.epochs))
    return tc.lr


def describe(tc) -> str | None:
    """One line for the log when the budget clock drives the run, else None."""
    if concrete_clock(tc) != "budget":
        return None
    drives = "the learning rate's cosine and the stop" if tc.lr_schedule == "cosine" else "the stop"
    warm = (f"; the KL warm-up counts {tc.warmup_epochs} epochs, ending by half the budget if fewer fit"
            if tc.warmup_epochs else "")
    return (f"schedule: the budget clock drives {drives}: the fraction of the {tc.max_minutes:g} minutes used, "
            f"or of the {tc.epochs} epochs, whichever is further{warm} (--schedule-clock epochs to count epochs "
            "only)")


__all__ = ["CLOCKS", "Position", "WARMUP_SHARE_MAX", "concrete_clock", "describe", "learning_rate", "position",
           "warmup_position"]
