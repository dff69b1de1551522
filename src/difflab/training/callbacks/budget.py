"""Training for a wall-clock budget (`difflab train --train.minutes M`).

A guard ends the fit normally (validation, after_fit, the saved model) after the first batch
that finishes past the budget, and the learning-rate schedule is indexed by the share of the
budget spent instead of by the step: a step count fixed in advance cannot fill a budget on a
machine whose speed changes with other people's jobs, and at a steady step rate the two
indexings give the same curve.
"""

from __future__ import annotations

import time
from typing import Any

from difflab.training.callback import Callback
from difflab.training.callbacks.schedule import LRScheduleCB, onecycle_momentum


class WallClockBudget(Callback):
    """Requests the end of the fit after the first training batch that finishes past `seconds`."""

    order = 10_000  # after every other callback has seen the batch (EMA, metrics, ...)

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"the time budget must be > 0 seconds, got {seconds}")
        self.seconds = seconds
        self.start: float | None = None
        self.stopped = False

    def before_fit(self, learn: Any) -> None:
        self.start = time.perf_counter()
        self.stopped = False

    def fraction(self) -> float:
        """Share of the budget spent so far (0 before the fit starts, at most 1)."""
        if self.start is None:
            return 0.0
        return min(1.0, (time.perf_counter() - self.start) / self.seconds)

    def seconds_left(self) -> float:
        """Wall-clock seconds until the budget is spent (the whole budget before the fit)."""
        return self.seconds * (1.0 - self.fraction())

    def after_batch(self, learn: Any) -> None:
        if learn.training and self.fraction() >= 1.0:
            self.stopped = True
            learn.stop_requested = True


class BudgetLRSchedule(LRScheduleCB):
    """An LR (and one-cycle beta1) schedule at step = share of the budget x RESOLUTION."""

    RESOLUTION = 100_000

    def __init__(self, base: LRScheduleCB, budget: WallClockBudget) -> None:
        super().__init__(base.schedule, warmup=base.warmup, cycle_momentum=base.cycle_momentum)
        self.budget = budget

    def before_batch(self, learn: Any) -> None:
        if not learn.training:
            return
        total = self.RESOLUTION
        step = min(total - 1, round(self.budget.fraction() * total))
        lr = self.lr_at(step, total, learn.lr)
        beta1 = None
        if self.schedule == "onecycle" and self.cycle_momentum:
            beta1 = onecycle_momentum(step, total, pct_start=self.warmup)
        for group in learn.optimizer.param_groups:
            group["lr"] = lr
            if beta1 is not None and "betas" in group:
                group["betas"] = (beta1, group["betas"][1])


def with_budget(callbacks: list[Callback], seconds: float) -> list[Callback]:
    """`callbacks` with the LR schedule re-indexed by a `seconds` budget, plus its guard."""
    guard = WallClockBudget(seconds)
    swapped = [
        BudgetLRSchedule(cb, guard) if isinstance(cb, LRScheduleCB) else cb for cb in callbacks
    ]
    return [*swapped, guard]
