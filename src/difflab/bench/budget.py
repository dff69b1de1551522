"""difflab's training recipe (what `difflab train` wires) under a wall-clock budget, without
validation, sample grids or trackers: the end-to-end benchmark's difflab side.

The budget (guard + LR schedule indexed by the share of the budget spent) is
`difflab.training.callbacks.budget`, the same one `difflab train --train.minutes` uses.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from difflab.config import RunConfig
from difflab.training.callbacks.budget import WallClockBudget, with_budget

EPOCHS_CAP = 10_000  # the fit's nominal length; the budget ends it long before


def _learner(config: RunConfig, run_dir: Path, seconds: float, *, progress: bool):
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
        callbacks=with_budget(callbacks, seconds), run_dir=run_dir,
    )  # fmt: skip
    return learn, image_shape


def train_for(
    config: RunConfig, seconds: float, run_dir: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Train `config` for `seconds` of wall-clock; save the EMA weights into run_dir."""
    from difflab.cli.experiment import save_trained
    from difflab.training import eval_model, find_callback

    config = replace(config, train=replace(config.train, epochs=EPOCHS_CAP))
    learn, image_shape = _learner(config, run_dir, seconds, progress=progress)
    guard = find_callback(learn, WallClockBudget)
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
