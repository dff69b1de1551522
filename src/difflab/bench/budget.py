"""difflab's training recipe (what `difflab train` wires) under a wall-clock budget.

The learning-rate schedule needs the number of steps in advance, so a budget becomes steps in
two moves: a short probe times the real loop (same Learner, callbacks, batch and precision),
then the run is sized to fill the budget (epochs x a prefix of the training set). A guard
callback ends training at the budget whatever happens, e.g. when the machine gets busier.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from difflab.config import RunConfig
from difflab.training.callback import Callback, CancelFitException


class WallClockBudget(Callback):
    """Ends the fit (CancelFitException) after the first batch that finishes past `seconds`."""

    order = 10_000  # after every other callback has seen the batch (EMA, metrics, ...)

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"the time budget must be > 0 seconds, got {seconds}")
        self.seconds = seconds
        self.start = 0.0
        self.stopped = False

    def before_fit(self, learn: Any) -> None:
        self.start = time.perf_counter()

    def after_batch(self, learn: Any) -> None:
        if learn.training and time.perf_counter() - self.start >= self.seconds:
            self.stopped = True
            raise CancelFitException


class StepTimes(Callback):
    """Wall-clock time of every training batch (the probe's measurement)."""

    order = 10_001

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def before_batch(self, learn: Any) -> None:
        self._start = time.perf_counter()

    def after_batch(self, learn: Any) -> None:
        if learn.training:
            self.times.append(time.perf_counter() - self._start)


@dataclass(frozen=True)
class Plan:
    """How many epochs over how many images fill the budget at the probed step rate."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    seconds_per_step: float

    @property
    def limit(self) -> int:
        """Images of the training set used (a prefix): whole batches only."""
        return self.steps_per_epoch * self.batch_size

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def plan_steps(seconds: float, seconds_per_step: float, *, batch_size: int, n_images: int) -> Plan:
    """Epochs and a training-set prefix whose steps fill `seconds` (at least one step)."""
    total = max(1, int(seconds / seconds_per_step))
    per_epoch_max = n_images // batch_size
    epochs = math.ceil(total / per_epoch_max)
    per_epoch = max(1, min(per_epoch_max, round(total / epochs)))
    return Plan(epochs, per_epoch, batch_size, seconds_per_step)


def _learner(config: RunConfig, run_dir: Path, extra: list[Callback], *, progress: bool):
    """The Learner `train_experiment` builds, without validation, sample grids or trackers."""
    from difflab.cli.experiment import build_data, build_model, build_schedule
    from difflab.diffusion import make_objective
    from difflab.training import Learner, standard_callbacks

    t = config.train
    torch.manual_seed(t.seed)
    train_batches, _, image_shape = build_data(config)
    model = build_model(config, image_shape[0])
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
        callbacks=[*callbacks, *extra], run_dir=run_dir,
    )  # fmt: skip
    return learn, image_shape


def probe_seconds_per_step(config: RunConfig, *, steps: int = 3) -> float:
    """Median time of a training step of this config (after one warm-up step)."""
    probe = replace(
        config,
        data=replace(config.data, limit=(steps + 1) * config.train.batch_size),
        train=replace(config.train, epochs=1),
    )
    timer = StepTimes()
    with tempfile.TemporaryDirectory() as tmp:
        learn, _ = _learner(probe, Path(tmp), [timer], progress=False)
        learn.fit(1)
    return statistics.median(timer.times[1:])


def train_for(
    config: RunConfig, seconds: float, run_dir: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Probe, size the run to `seconds`, train under a guard, save the EMA weights to run_dir."""
    from difflab.cli.experiment import save_trained
    from difflab.data import load_images
    from difflab.training import eval_model

    n_images = config.data.limit or len(load_images(config.data.dataset, "train", config.data.root))
    plan = plan_steps(
        seconds,
        probe_seconds_per_step(config),
        batch_size=config.train.batch_size,
        n_images=n_images,
    )
    sized = replace(
        config,
        data=replace(config.data, limit=plan.limit),
        train=replace(config.train, epochs=plan.epochs),
    )
    guard = WallClockBudget(seconds)
    learn, image_shape = _learner(sized, run_dir, [guard], progress=progress)
    start = time.perf_counter()
    learn.fit(plan.epochs)
    elapsed = time.perf_counter() - start
    model = eval_model(learn)
    save_trained(run_dir, model, sized, image_shape)
    return {
        "model": model,
        "config": sized,
        "image_shape": image_shape,
        "planned_steps": plan.steps,
        "steps": learn.step,
        "train_seconds": elapsed,
        "stopped_by_budget": guard.stopped,
        "train_images_per_s": learn.step * config.train.batch_size / elapsed,
        "probe_seconds_per_step": plan.seconds_per_step,
    }
