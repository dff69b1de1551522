"""difflab's training recipe (what `difflab train` wires) under a wall-clock budget, without
validation, sample grids or trackers: the end-to-end benchmark's difflab side.

The Learner comes from `difflab.experiment.build_learner`, the same wiring `difflab train`
uses; the budget (guard + LR schedule indexed by the share of the budget spent) is
`--train.minutes`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from difflab.config import RunConfig

EPOCHS_CAP = 10_000  # the fit's nominal length; the budget ends it long before


def train_for(
    config: RunConfig, seconds: float, run_dir: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Train `config` for `seconds` of wall-clock; save the EMA weights into run_dir."""
    from difflab.experiment.build import build_data, build_learner, resolved_with_data
    from difflab.io.trained import save_trained, trained_model
    from difflab.training import eval_model, find_callback
    from difflab.training.callbacks.budget import WallClockBudget

    train = replace(
        config.train, epochs=EPOCHS_CAP, minutes=seconds / 60, sample_every=0, eval_every=0
    )
    config = replace(config, train=train)
    data = build_data(config, validate=False)
    config = resolved_with_data(config, data)  # what the saved model.json must record
    learn, image_shape = build_learner(
        config, run_dir, data=data, validate=False, progress=progress
    )
    guard = find_callback(learn, WallClockBudget)
    start = time.perf_counter()
    learn.fit(EPOCHS_CAP)
    elapsed = time.perf_counter() - start
    model = eval_model(learn)
    save_trained(run_dir, model, config, image_shape)
    return {
        "model": model,
        "trained": trained_model(model, config, image_shape),  # ready for generate_images
        "config": config,
        "image_shape": image_shape,
        "steps": learn.step,
        "epochs_started": learn.epoch + 1,
        "train_seconds": elapsed,
        "stopped_by_budget": guard.stopped,
        "train_images_per_s": learn.step * config.train.batch_size / elapsed,
    }
