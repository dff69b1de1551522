"""difflab's training recipe (what `difflab train` wires) under a wall-clock budget.

A guard callback ends training when the budget is spent, and the recipe's learning-rate
schedule is indexed by the share of the budget spent instead of by the step: a step count
fixed in advance cannot fill a budget on a machine whose speed changes with other people's
jobs, and at a steady step rate the two indexings give the same curve.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from difflab.config import RunConfig
from difflab.training.callback import Callback, CancelFitException
from difflab.training.callbacks.schedule import LRScheduleCB, onecycle_momentum

EPOCHS_CAP = 10_000  # the fit's nominal length; the budget ends it long before


class WallClockBudget(Callback):
    """Ends the fit (CancelFitException) after the first batch that finishes past `seconds`."""

    order = 10_000  # after every other callback has seen the batch (EMA, metrics, ...)

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"the time budget must be > 0 seconds, got {seconds}")
        self.seconds = seconds
        self.start: float | None = None
        self.stopped = False

    def before_fit(self, learn: Any) -> None:
        self.start = time.perf_counter()

    def fraction(self) -> float:
        """Share of the budget spent so far (0 before the fit starts, at most 1)."""
        if self.start is None:
            return 0.0
        return min(1.0, (time.perf_counter() - self.start) / self.seconds)

    def after_batch(self, learn: Any) -> None:
        if learn.training and self.fraction() >= 1.0:
            self.stopped = True
            raise CancelFitException


class BudgetLRSchedule(LRScheduleCB):
    """The recipe's LR (and one-cycle beta1) schedule at step = share of budget x RESOLUTION."""

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


def _budget_callbacks(callbacks: list[Callback], guard: WallClockBudget) -> list[Callback]:
    """The standard callbacks with the LR schedule re-indexed by the budget, plus the guard."""
    swapped = [
        BudgetLRSchedule(cb, guard) if isinstance(cb, LRScheduleCB) else cb for cb in callbacks
    ]
    return [*swapped, guard]


def _learner(config: RunConfig, run_dir: Path, guard: WallClockBudget, *, progress: bool):
    """The Learner `train_experiment` builds, without validation, sample grids or trackers."""
    from difflab.cli.experiment import build_data, build_model, build_schedule
    from difflab.diffusion import make_objective
    from difflab.training import Learner, standard_callbacks

    t = config.train
    torch.manual_seed(t.seed)
    train_batches, _, image_shape = build_data(config)
    model = build_model(config, image_shape)
    objective = make_objective(
        build_schedule(config),
        objective=config.diffusion.objective,
        min_snr_gamma=config.diffusion.min_snr_gamma,
    )
    callbacks = standard_callbacks(
        mixed_precision=t.mixed_precision, lr_schedule=t.lr_schedule, warmup=t.warmup,
        grad_clip=t.grad_clip, ema_decay=t.ema_decay, checkpoint_every=t.checkpoint_every,
        max_nonfinite=t.max_nonfinite, progress=progress, run_dir=run_dir,
    )  # fmt: skip
    optimizer = partial(torch.optim.AdamW, weight_decay=t.weight_decay, foreach=True)
    learn = Learner(
        model, train_batches, objective, lr=t.lr, optimizer=optimizer,
        callbacks=_budget_callbacks(callbacks, guard), run_dir=run_dir,
    )  # fmt: skip
    return learn, image_shape


def train_for(
    config: RunConfig, seconds: float, run_dir: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Train `config` for `seconds` of wall-clock; save the EMA weights into run_dir."""
    from difflab.cli.experiment import save_trained
    from difflab.training import eval_model

    config = replace(config, train=replace(config.train, epochs=EPOCHS_CAP))
    guard = WallClockBudget(seconds)
    learn, image_shape = _learner(config, run_dir, guard, progress=progress)
    start = time.perf_counter()
    learn.fit(EPOCHS_CAP)
    elapsed = time.perf_counter() - start
    model = eval_model(learn)
    save_trained(run_dir, model, config, image_shape)
    return {
        "model": model,
        "config": config,
        "image_shape": image_shape,
        "steps": learn.step,
        "epochs_started": learn.epoch + 1,
        "train_seconds": elapsed,
        "stopped_by_budget": guard.stopped,
        "train_images_per_s": learn.step * config.train.batch_size / elapsed,
    }
