"""Learning-rate schedules, stepped every batch, as pure functions of the run's progress.

A schedule that is a function of the progress (steps done / total steps by default) needs no
state of its own: a resumed run gets the same learning rate at the same step without saving
anything. The progress is an injectable clock: `with_budget` reads it off a wall-clock budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

ScheduleName = Literal["onecycle", "cosine", "constant"]
Progress = Callable[["Learner"], float]
"""The fraction of the run done, in [0, 1], read before each training batch."""


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


# --- One-cycle policy, Smith & Topin 2017 ("Super-convergence"), as torch's OneCycleLR
# --- (two phases, cosine annealing): lr from max_lr/div up to max_lr, then down to
# --- max_lr/(div*final_div); beta1 moves opposite, from max_momentum to base_momentum and back.
def onecycle_at(
    step: int,
    total: int,
    *,
    max_value: float,
    start_value: float,
    end_value: float,
    pct_start: float,
) -> float:
    """Value of a two-phase cosine one-cycle curve at `step` of `total` (torch's phases)."""
    step = min(step, total - 1)
    warm_end = float(pct_start * total) - 1.0
    # A warm-up of one step or less (warm_end <= 0; at 0 torch's OneCycleLR divides by zero)
    # starts at the peak.
    if step <= warm_end and warm_end > 0:
        return _cos_anneal(start_value, max_value, step / warm_end)
    return _cos_anneal(max_value, end_value, (step - warm_end) / (total - 1 - warm_end))


def onecycle_lr(
    step: int,
    total: int,
    *,
    max_lr: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    initial = max_lr / div_factor
    return onecycle_at(
        step,
        total,
        max_value=max_lr,
        start_value=initial,
        end_value=initial / final_div_factor,
        pct_start=pct_start,
    )


def onecycle_momentum(
    step: int,
    total: int,
    *,
    pct_start: float = 0.3,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> float:
    return onecycle_at(
        step,
        total,
        max_value=base_momentum,
        start_value=max_momentum,
        end_value=max_momentum,
        pct_start=pct_start,
    )


# --- Cosine with linear warm-up (Goyal et al. 2017 warm-up; Loshchilov & Hutter 2017 SGDR
# --- cosine without restarts), as diffusers' get_cosine_schedule_with_warmup:
#   lr = max_lr * s / W                                  for s < W
#   lr = max_lr * (1 + cos(pi * (s - W) / (T - W))) / 2  afterwards
def cosine_warmup_lr(step: int, total: int, *, max_lr: float, warmup_steps: int) -> float:
    if step < warmup_steps:
        return max_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return max_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def step_progress(learn: Learner) -> float:
    """Optimiser steps done / the fit's total steps: the default clock of `LRScheduleCB`."""
    return learn.step / learn.total_steps


class LRScheduleCB(Callback):
    """Sets every param group's lr, and for one-cycle its first momentum coefficient (Adam's
    beta1, SGD's momentum), before each training batch, as a function of the run's progress.

    The peak lr is the Learner's `lr`; `warmup` is the fraction of the run spent warming up.
    `progress(learn)` is the fraction of the run done (default: steps done / total steps). The
    curve is laid over `steps` points (default: the fit's total steps, so that step k gets
    torch's OneCycleLR value at k) and progress p reads the point round(p * steps).
    """

    order = -10

    def __init__(
        self,
        schedule: ScheduleName = "onecycle",
        *,
        warmup: float = 0.3,
        cycle_momentum: bool = True,
        progress: Progress = step_progress,
        steps: int | None = None,
    ):
        if schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"schedule must be onecycle, cosine or constant, got {schedule!r}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {warmup}")
        if schedule == "onecycle" and warmup <= 0:
            raise ValueError("one-cycle needs warmup > 0 (its pct_start)")
        if steps is not None and steps < 2:
            raise ValueError(f"a schedule is laid over steps >= 2 points, got {steps}")
        self.schedule = schedule
        self.warmup = warmup
        self.cycle_momentum = cycle_momentum
        self.progress = progress
        self.steps = steps

    def on_clock(self, progress: Progress, *, steps: int) -> LRScheduleCB:
        """The same schedule read off another clock (e.g. the share of a time budget spent)."""
        return LRScheduleCB(
            self.schedule,
            warmup=self.warmup,
            cycle_momentum=self.cycle_momentum,
            progress=progress,
            steps=steps,
        )

    def lr_at(self, step: int, total: int, max_lr: float) -> float:
        if self.schedule == "onecycle":
            return onecycle_lr(step, total, max_lr=max_lr, pct_start=self.warmup)
        if self.schedule == "cosine":
            warmup_steps = round(self.warmup * total)
            return cosine_warmup_lr(step, total, max_lr=max_lr, warmup_steps=warmup_steps)
        return max_lr

    def momentum_at(self, step: int, total: int) -> float | None:
        """beta1 (or SGD momentum) at `step`; None where the schedule leaves it alone."""
        if self.schedule == "onecycle" and self.cycle_momentum:
            return onecycle_momentum(step, total, pct_start=self.warmup)
        return None

    def before_batch(self, learn: Learner) -> None:
        if not learn.training:
            return
        total = self.steps or learn.total_steps
        step = min(total - 1, round(self.progress(learn) * total))
        lr, beta1 = self.lr_at(step, total, learn.lr), self.momentum_at(step, total)
        for group in learn.optimizer.param_groups:
            group["lr"] = lr
            if beta1 is not None and "betas" in group:
                group["betas"] = (beta1, group["betas"][1])
            elif beta1 is not None and "momentum" in group:
                group["momentum"] = beta1
