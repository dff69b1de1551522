"""Training for a wall-clock budget (`difflab train --train.minutes M`).

A guard ends the fit normally (validation, after_fit, the saved model) after the first batch
that finishes past the budget, and the learning-rate schedule reads its progress off the share
of the budget spent instead of the steps done: a step count fixed in advance cannot fill a
budget on a machine whose speed changes with other people's jobs, and at a steady step rate the
two clocks give the same curve.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from difflab.training.callback import Callback
from difflab.training.callbacks.schedule import LRScheduleCB

# Points the schedule's curve is laid over on the budget's clock (its nominal "steps").
RESOLUTION = 100_000


class WallClockBudget(Callback):
    """Requests the end of the fit after the first training batch that finishes past `seconds`.

    `clock` returns seconds (default `time.perf_counter`); tests inject a fake one.
    """

    order = 10_000  # after every other callback has seen the batch (EMA, metrics, ...)

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        if seconds <= 0:
            raise ValueError(f"the time budget must be > 0 seconds, got {seconds}")
        self.seconds = seconds
        self.clock = clock
        self.start: float | None = None
        self.stopped = False

    def before_fit(self, learn: Any) -> None:
        self.start = self.clock()
        self.stopped = False

    def fraction(self) -> float:
        """Share of the budget spent so far (0 before the fit starts, at most 1)."""
        if self.start is None:
            return 0.0
        return min(1.0, (self.clock() - self.start) / self.seconds)

    def progress(self, learn: Any) -> float:
        """The budget as an LR-schedule clock (`LRScheduleCB`'s `progress`): elapsed / budget."""
        return self.fraction()

    def seconds_left(self) -> float:
        """Wall-clock seconds until the budget is spent (the whole budget before the fit)."""
        return self.seconds * (1.0 - self.fraction())

    def after_batch(self, learn: Any) -> None:
        if learn.training and self.fraction() >= 1.0:
            self.stopped = True
            learn.stop_requested = True


def budget_schedule(schedule: LRScheduleCB, budget: WallClockBudget) -> LRScheduleCB:
    """`schedule` read off the budget's clock: its curve runs once over the `budget`."""
    return schedule.on_clock(budget.progress, steps=RESOLUTION)


def with_budget(
    callbacks: list[Callback], seconds: float, *, clock: Callable[[], float] = time.perf_counter
) -> list[Callback]:
    """`callbacks` with the LR schedule re-indexed by a `seconds` budget, plus its guard."""
    guard = WallClockBudget(seconds, clock=clock)
    swapped = [
        budget_schedule(cb, guard) if isinstance(cb, LRScheduleCB) else cb for cb in callbacks
    ]
    return [*swapped, guard]
