"""The main job in one call: train -> a sample grid -> FID/KID against the real-data floor."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from difflab.config import RunConfig
from difflab.experiment.train import nonfinite_message, train_experiment

log = logging.getLogger("difflab")

GRID_SEEDS = range(64)


def quickstart(config: RunConfig, *, progress: bool = True) -> tuple[int, dict[str, Any] | None]:
    """(exit code, report): 0 with the report (also in RUN/eval.json) when all three steps ran;
    1 when the loss went non-finite; 130 when training was interrupted (resumable).
    Other ranks under `accelerate launch` share the training and return (0, None)."""
    from difflab.evaluation import dataset_evaluator, evaluate_model, trained_dataset
    from difflab.generation import pick_device
    from difflab.io.trained import load_trained
    from difflab.metrics.feature_models import require_feature_model
    from difflab.precision import resolve_precision
    from difflab.training import process_rank

    require_feature_model(config.data.dataset)  # fail early, not after training
    log.info("1/3 training")
    summary = train_experiment(config, progress=progress)  # makes the run folder
    run_dir = Path(summary["run_dir"])
    if process_rank()[0] != 0:
        return 0, None  # training was shared; sampling and evaluation are the main process's
    if summary["stop_reason"] == "nonfinite":
        log.error("%s", nonfinite_message(summary))
        return 1, None  # nothing to sample from: say so instead of failing to load the model
    if not summary["finished"]:
        return 130, None  # interrupted: the checkpoint is saved, `difflab train --resume` continues
    trained = load_trained(run_dir, device=pick_device())
    dataset, root, shape = trained_dataset(trained)
    evaluator = dataset_evaluator(dataset, shape, data_root=root)
    bf16 = resolve_precision(config.train.mixed_precision) == "bf16"  # as training ran
    log.info("2/3 sampling a grid with %s", describe_sampling(config.sample))
    grid = _save_grid(trained, config, run_dir, bf16=bf16)
    log.info("3/3 evaluating %d samples", config.eval.n)
    start = time.perf_counter()
    sample = dataclasses.replace(config.sample, n=config.eval.n)
    result = evaluate_model(trained, sample, evaluator, kid=True)
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    report = {"run_dir": str(run_dir), "grid": str(grid), "train": summary, "eval": result}
    (run_dir / "eval.json").write_text(json.dumps(report, indent=2))
    return 0, report


def describe_sampling(sample) -> str:
    """'ddim, 16 steps, guidance 2 at 0 <= t <= 600' for the log."""
    text = f"{sample.sampler}, {sample.steps} steps"
    for name, value in (("guidance", sample.guidance), ("autoguidance", sample.autoguidance)):
        if value != 1.0:
            text += f", {name} {value:g}"
    interval = sample.guided_timesteps()
    if interval and (sample.guidance != 1.0 or sample.autoguidance != 1.0):
        text += " at {:g} <= t <= {:g}".format(*interval)
    return text


def _save_grid(trained, config: RunConfig, run_dir: Path, *, bf16: bool) -> Path:
    from difflab.data import to_uint8
    from difflab.generation import class_rows, generate_images
    from difflab.io.images import save_grid

    labels, ncols = class_rows(trained, len(GRID_SEEDS))  # conditional: one row per class
    seeds = GRID_SEEDS if labels is None else range(len(labels))
    images = generate_images(trained, config.sample, seeds=seeds, labels=labels, bf16=bf16)
    pixels = to_uint8(images, trained.low, trained.high)
    return save_grid(pixels, run_dir / "samples" / "final.png", scale=2, ncols=ncols)
