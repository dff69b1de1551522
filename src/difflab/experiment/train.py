"""A training run: its folder, the Learner, trackers and notifications, and the model file."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from difflab.config import RunConfig, config_to_dict
from difflab.experiment.build import (
    build_data,
    build_learner,
    build_model,
    build_objective,
    resolved_with_data,
)
from difflab.io.trained import GUIDE_DIR, save_trained
from difflab.training.callback import Callback

log = logging.getLogger("difflab")


def start_run(config: RunConfig) -> Path:
    """A new run folder holding the resolved config and the code that runs (commit + diff)."""
    from difflab.tracking.run_folder import create_run_folder

    return create_run_folder(
        config.runs_dir, config_to_dict(config), dataset=config.data.dataset,
        preset=config.model.preset, name=config.name,
    )  # fmt: skip


def start_run_once(config: RunConfig) -> Path:
    """The run folder, made by the main process only and shared with the others.

    Under `accelerate launch`/torchrun every rank runs this; two folders would split one run
    in two. `process_rank` brings the process group up before the broadcast.
    """
    from difflab.training import process_rank

    rank, world_size = process_rank()
    if world_size == 1:
        return start_run(config)
    from accelerate.utils import broadcast_object_list

    shared = [str(start_run(config)) if rank == 0 else None]
    return Path(broadcast_object_list(shared, from_process=0)[0])


class SaveModelCB(Callback):
    """Writes model.safetensors + model.json (EMA weights) when fit ends normally.

    Done in `after_fit`, before the trackers finish, so they can log the model as an artifact.
    """

    order = 80

    def __init__(self, config: RunConfig, classes: list[str]) -> None:
        self.config, self.classes = config, classes
        self.image_shape: tuple[int, int, int] | None = None  # known once the data is built
        self.autoencoder: dict | None = None  # a latent run's autoencoder record

    def after_fit(self, learn: Any) -> None:
        from difflab.training import eval_model

        if learn.is_main_process:
            path = save_trained(
                learn.run_dir, eval_model(learn), self.config, self.image_shape,
                classes=self.classes, autoencoder=self.autoencoder,
            )  # fmt: skip
            learn.report_file("model", path, "artifact")


class SaveGuideCB(Callback):
    """Writes the EMA model once, when `at` of the run is done, into RUN/guide: the weaker
    model of autoguidance (Karras et al. 2024: a less-trained version of the model itself).

    The run's share done is the wall-clock budget's under --train.minutes, else steps done /
    total steps. A resumed run keeps a guide it already wrote.
    """

    order = 81  # after the EMA update (30), beside SaveModelCB

    def __init__(self, save: SaveModelCB, at: float) -> None:
        if not 0 < at < 1:
            raise ValueError(f"the guide is saved at a share of the run in (0, 1), got {at}")
        self.save, self.at = save, at
        self.done = False
        self._budget: Any = None

    def before_fit(self, learn: Any) -> None:
        from difflab.training import find_callback
        from difflab.training.callbacks.budget import WallClockBudget

        self._budget = find_callback(learn, WallClockBudget)
        self.done = (Path(learn.run_dir) / GUIDE_DIR / "model.json").is_file()

    def share_done(self, learn: Any) -> float:
        if self._budget is not None:
            return self._budget.fraction()
        return learn.step / max(1, learn.total_steps)

    def after_batch(self, learn: Any) -> None:
        if self.done or not learn.training or self.share_done(learn) < self.at:
            return
        self.done = True
        if learn.is_main_process:
            from difflab.training import eval_model

            s = self.save
            path = save_trained(
                Path(learn.run_dir) / GUIDE_DIR, eval_model(learn), s.config, s.image_shape,
                classes=s.classes, autoencoder=s.autoencoder,
            )  # fmt: skip
            log.info("autoguidance: wrote the guide model %s at step %d", path, learn.step)


class LastValues(Callback):
    """Keeps the last reported value of every metric (for the run summary)."""

    order = 1000

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def on_report(self, learn: Any, name: str, value: float, step: int) -> None:
        self.values[name] = value


def notify_callbacks(config: RunConfig) -> list:
    n = config.notify
    if n.webhook is None and n.command is None:
        return []
    from difflab.training.callbacks.notify import NotifyCallback

    thresholds = [spec.strip() for spec in n.when.split(",") if spec.strip()]
    return [
        NotifyCallback(command=n.command, webhook=n.webhook, thresholds=thresholds, on_end=n.on_end)
    ]


def train_experiment(
    config: RunConfig,
    run_dir: Path | None = None,
    *,
    resume: Path | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train, then write model.safetensors + model.json (EMA weights) into the run folder.
    `callbacks` join the recipe's (a notebook's progress bar and live loss plot).

    Without `run_dir` a new run folder is made once the data has loaded, so a bad --data.*
    value fails before anything is written.
    """
    from difflab.tracking.base import make_trackers
    from difflab.training import find_callback, process_rank
    from difflab.training.callbacks.budget import WallClockBudget
    from difflab.training.callbacks.tracking import TrackingCallback

    rank, world_size = process_rank()
    data = build_data(config, rank=rank, world_size=world_size)
    # "auto" -> the number, sigma_data measured: before the folder records the config
    config = resolved_with_data(config, data)
    if run_dir is None:
        run_dir = start_run_once(config)
        log.info("run folder: %s", run_dir)
    extra: list = []
    if rank == 0:
        # the folder that holds the run now: a run folder moved or copied elsewhere and
        # resumed there is indexed there, never in the runs folder named by its config.json
        trackers = make_trackers(
            config.trackers, run_dir, config_to_dict(config), runs_dir=Path(run_dir).parent
        )
        extra = [TrackingCallback(trackers), *notify_callbacks(config)]
    save, last = SaveModelCB(config, data.classes), LastValues()
    save.autoencoder = data.codec.record() if data.codec is not None else None
    if config.train.guide_at:
        extra.append(SaveGuideCB(save, config.train.guide_at))
    learn, save.image_shape = build_learner(
        config, run_dir, data=data, rank=rank, world_size=world_size, progress=progress,
        callbacks=[*extra, save, last, *callbacks],
    )  # fmt: skip
    start = time.perf_counter()
    learn.fit(config.train.epochs, resume=resume)
    seconds = time.perf_counter() - start
    stop = _early_stop(learn, run_dir)
    n_images = learn.step * config.train.batch_size * world_size
    budget = find_callback(learn, WallClockBudget)
    return {
        "run_dir": str(run_dir),
        "epochs": config.train.epochs,
        "steps": learn.step,
        "finished": stop["stop_reason"] is None,
        **stop,
        "seconds": round(seconds, 1),
        "metrics": last.values,
        "images_per_s_overall": round(n_images / max(seconds, 1e-9), 1),
        "stopped_by_time_budget": bool(budget and budget.stopped),
    }


def _early_stop(learn: Any, run_dir: Path) -> dict[str, Any]:
    """Why the fit ended before its last epoch ("signal", "nonfinite" or None) and the newest
    checkpoint; a cancelled fit returns from `fit` like a finished one, so this must be asked."""
    from difflab.training import last_checkpoint, stopped_by_nonfinite, stopped_by_signal

    checkpoint = last_checkpoint(learn)
    signal_number = stopped_by_signal(learn)
    reason = None
    if signal_number is not None:
        reason = "signal"
        log.warning(
            "stopped by signal %d after step %d; continue with `difflab train --resume %s`",
            signal_number, learn.step, run_dir,
        )  # fmt: skip
    elif stopped_by_nonfinite(learn):
        reason = "nonfinite"  # the guard has logged the details; no model.safetensors
    return {"stop_reason": reason, "last_checkpoint": str(checkpoint) if checkpoint else None}


def nonfinite_message(summary: dict) -> str:
    checkpoint = summary["last_checkpoint"]
    where = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was saved"
    # --resume keeps the run's config, so it only helps when the blow-up was a fluke
    return (
        f"training stopped at step {summary['steps']}: the loss or gradients stayed non-finite "
        f"(see --train.max-nonfinite); no model was saved; {where}. Train again with a lower "
        f"--train.lr, or continue from it unchanged: difflab train --resume {summary['run_dir']}"
    )


def find_learning_rate(config: RunConfig, *, n_steps: int = 100) -> dict[str, Any]:
    """The LR range test (Smith 2015; fast.ai's lr_find) on the configured model and data."""
    from difflab.training.callbacks import AccelerateCB
    from difflab.training.callbacks.lr_finder import lr_find

    torch.manual_seed(config.train.seed)
    data = build_data(config, validate=False)
    config = resolved_with_data(config, data)
    train_batches, image_shape = data.train, data.image_shape
    model = build_model(config, image_shape)
    optimizer = partial(torch.optim.AdamW, weight_decay=config.train.weight_decay)
    result = lr_find(
        model, train_batches, build_objective(config), optimizer=optimizer, n_steps=n_steps,
        callbacks=[AccelerateCB(mixed_precision=config.train.mixed_precision)],
    )  # fmt: skip
    return {"suggestion": result.suggestion, "lrs": result.lrs, "losses": result.losses}
