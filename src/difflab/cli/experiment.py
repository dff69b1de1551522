"""Wiring: a RunConfig becomes data, a UNet, a schedule, an objective and a Learner.

This is the only place where config names turn into objects (STYLE §1); `difflab train`,
`difflab quickstart` and the benchmarks call it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from difflab.config import RunConfig, config_from_dict, config_to_dict
from difflab.diffusion import Schedule, schedule_from_config
from difflab.io.model_file import load_model_file, save_model
from difflab.training.callback import Callback

log = logging.getLogger("difflab")


@dataclass(frozen=True)
class TrainedModel:
    """A network ready to sample from, with what it needs to know about its data."""

    model: torch.nn.Module
    schedule: Schedule
    objective: str
    image_shape: tuple[int, int, int]
    low: float
    high: float
    meta: dict[str, Any]


def build_schedule(config: RunConfig) -> Schedule:
    d = config.diffusion
    return schedule_from_config(d.schedule, d.n_steps, d.beta_min, d.beta_max)


def build_data(config: RunConfig, *, rank: int = 0, world_size: int = 1):
    """(train batches, validation batches, image shape (C, H, W)) for the configured dataset."""
    from difflab.data import InMemoryBatches, load_images

    d, t = config.data, config.train
    train = load_images(d.dataset, "train", root=d.root)
    images, labels = train.images, train.labels
    if d.limit is not None:
        images, labels = images[: d.limit], labels[: d.limit]
    common = {"low": d.low, "high": d.high, "pad": d.pad}
    train_batches = InMemoryBatches(
        images,
        labels,
        batch_size=t.batch_size,
        shuffle=True,
        seed=t.seed,
        drop_last=True,
        rank=rank,
        world_size=world_size,
        **common,
    )
    valid_batches = None
    if d.dataset in ("fashion_mnist", "mnist", "cifar10"):
        test = load_images(d.dataset, "test", root=d.root)
        n_valid = min(len(test.images), max(1024, (d.limit or 0) // 6))
        valid_batches = InMemoryBatches(
            test.images[:n_valid],
            test.labels[:n_valid],
            batch_size=512,
            shuffle=False,
            drop_last=False,
            rank=rank,
            world_size=world_size,
            **common,
        )
    c, h, w = images.shape[1:]
    return train_batches, valid_batches, (int(c), int(h + 2 * d.pad), int(w + 2 * d.pad))


def build_model(config: RunConfig, image_shape: tuple[int, int, int]) -> torch.nn.Module:
    """difflab's UNet preset, or diffusers' UNet2DModel through the same forward(x_t, t)."""
    if config.model.preset == "diffusers":
        from difflab.models.diffusers_adapter import build_diffusers_unet

        return build_diffusers_unet(sample_size=image_shape[1], in_channels=image_shape[0])
    from difflab.models import build_unet

    return build_unet(config.model.preset, in_channels=image_shape[0], dropout=config.model.dropout)


def model_from_config(config: dict[str, Any]) -> torch.nn.Module:
    """Rebuild an architecture recorded in model.json (its `kind` says which class)."""
    from difflab.models import UNet
    from difflab.models.unet import CONFIG_KIND

    if config.get("kind") == CONFIG_KIND:
        return UNet.from_config(config)
    from difflab.models.diffusers_adapter import DiffusersUNet

    return DiffusersUNet.from_config(config)


def model_meta(config: RunConfig, model: torch.nn.Module, image_shape: tuple[int, ...]) -> dict:
    """What model.json records: enough to rebuild the network and sample from it."""
    return {
        "format": "difflab-model/1",
        "unet": model.config(),
        "image_shape": list(image_shape),
        "run_config": config_to_dict(config),
    }


def save_trained(
    folder: Path, model: torch.nn.Module, config: RunConfig, image_shape: tuple[int, ...]
) -> Path:
    return save_model(folder, model.state_dict(), model_meta(config, model, image_shape))


def load_trained(path: str | Path, *, device: str | torch.device = "cpu") -> TrainedModel:
    """A run folder or model.safetensors (with its model.json) → a TrainedModel in eval mode."""
    state, meta = load_model_file(path)
    if meta.get("format") != "difflab-model/1":
        raise ValueError(
            f"{path}: model.json has format {meta.get('format')!r}, expected 'difflab-model/1'"
        )
    config = config_from_dict(meta["run_config"])
    model = model_from_config(meta["unet"])
    model.load_state_dict(state)
    model.to(device).eval()
    return TrainedModel(
        model,
        build_schedule(config),
        config.diffusion.objective,
        tuple(meta["image_shape"]),
        config.data.low,
        config.data.high,
        meta,
    )


class _SaveModelCB(Callback):
    """Writes model.safetensors + model.json (EMA weights) when fit ends normally.

    Done in `after_fit`, before the trackers finish, so they can log the model as an artifact.
    """

    order = 80

    def __init__(self, config: RunConfig, image_shape: tuple[int, int, int]) -> None:
        self.config, self.image_shape = config, image_shape

    def after_fit(self, learn: Any) -> None:
        from difflab.training import eval_model

        if learn.is_main_process:
            path = save_trained(learn.run_dir, eval_model(learn), self.config, self.image_shape)
            learn.report_file("model", path, "artifact")


def _notify_callbacks(config: RunConfig) -> list:
    n = config.notify
    if n.webhook is None and n.command is None:
        return []
    from difflab.training.callbacks.notify import NotifyCallback

    thresholds = [spec.strip() for spec in n.when.split(",") if spec.strip()]
    return [
        NotifyCallback(command=n.command, webhook=n.webhook, thresholds=thresholds, on_end=n.on_end)
    ]


class _LastValues(Callback):
    """Keeps the last reported value of every metric (for the run summary)."""

    order = 1000

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def on_report(self, learn: Any, name: str, value: float, step: int) -> None:
        self.values[name] = value


def sampling_plan(config: RunConfig) -> Any:
    """The SamplingPlan of config.sample (the same mapping as `difflab sample` uses)."""
    from difflab.cli.sampling_flags import plan_for

    bf16 = config.train.mixed_precision == "bf16"
    return plan_for(config.sample, low=config.data.low, high=config.data.high, bf16=bf16)


def _diffusion_callbacks(
    config: RunConfig, run_dir: Path, schedule: Schedule, image_shape: tuple[int, int, int]
) -> list:
    from difflab.training.callbacks.diffusion import DiffusionSampling, EvalCB, SampleGridCB

    t = config.train
    sampling = DiffusionSampling(
        schedule=schedule,
        objective=config.diffusion.objective,
        image_shape=image_shape,
        plan=sampling_plan(config),
        low=config.data.low,
        high=config.data.high,
        pad=config.data.pad,
    )
    callbacks: list = []
    if t.sample_every:
        callbacks.append(SampleGridCB(sampling, run_dir / "samples", every=t.sample_every))
    if t.eval_every:
        from difflab.metrics.shipped import load_shipped_evaluator

        evaluator = load_shipped_evaluator(data_root=config.data.root)
        callbacks.append(EvalCB(sampling, evaluator, every=t.eval_every, n=t.eval_n))
    return callbacks


def train_experiment(
    config: RunConfig, run_dir: Path, *, resume: Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train, then write model.safetensors + model.json (EMA weights) into run_dir."""
    import time
    from functools import partial

    from difflab.diffusion import make_objective
    from difflab.tracking.base import make_trackers
    from difflab.training import Learner, find_callback, process_rank, standard_callbacks
    from difflab.training.callbacks import ProgressCB
    from difflab.training.callbacks.budget import WallClockBudget, with_budget
    from difflab.training.callbacks.tracking import TrackingCallback

    t = config.train
    torch.manual_seed(t.seed)  # the weights' initialisation follows the seed
    rank, world_size = process_rank()
    train_batches, valid_batches, image_shape = build_data(config, rank=rank, world_size=world_size)
    model = build_model(config, image_shape)
    if world_size > 1:  # same weights on every rank (above), but each rank its own noise
        torch.manual_seed(t.seed + rank)
    if t.compile:
        model.compile()  # in place: state_dict keys stay those of the plain module
    schedule = build_schedule(config)
    objective = make_objective(
        schedule, objective=config.diffusion.objective, min_snr_gamma=config.diffusion.min_snr_gamma
    )
    callbacks = standard_callbacks(
        mixed_precision=t.mixed_precision,
        lr_schedule=t.lr_schedule,
        warmup=t.warmup,
        grad_clip=t.grad_clip,
        ema_decay=t.ema_decay,
        checkpoint_every=t.checkpoint_every,
        max_nonfinite=t.max_nonfinite,
        progress=False,
        run_dir=run_dir,
    )
    if t.minutes:
        callbacks = with_budget(callbacks, t.minutes * 60)
    # --no-progress still logs plain progress lines; it only turns the bars off.
    callbacks.append(ProgressCB(tty=None if progress else False))
    callbacks += _diffusion_callbacks(config, run_dir, schedule, image_shape)
    config_dict = config_to_dict(config)
    if rank == 0:
        trackers = make_trackers(config.trackers, run_dir, config_dict, runs_dir=config.runs_dir)
        callbacks.append(TrackingCallback(trackers))
        callbacks += _notify_callbacks(config)
    callbacks.append(_SaveModelCB(config, image_shape))
    last = _LastValues()
    callbacks.append(last)
    optimizer = partial(torch.optim.AdamW, weight_decay=t.weight_decay, foreach=True)
    learn = Learner(
        model,
        train_batches,
        objective,
        valid_data=valid_batches,
        lr=t.lr,
        optimizer=optimizer,
        callbacks=callbacks,
        run_dir=run_dir,
        config=config_dict,
    )
    start = time.perf_counter()
    learn.fit(t.epochs, resume=resume)
    seconds = time.perf_counter() - start
    stop = _early_stop(learn, run_dir)
    n_images = learn.step * t.batch_size * world_size
    budget = find_callback(learn, WallClockBudget)
    return {
        "run_dir": str(run_dir),
        "epochs": t.epochs,
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


def find_learning_rate(config: RunConfig, *, n_steps: int = 100) -> dict[str, Any]:
    """The LR range test (Smith 2015; fast.ai's lr_find) on the configured model and data."""
    from functools import partial

    from difflab.diffusion import make_objective
    from difflab.training.callbacks import AccelerateCB
    from difflab.training.callbacks.lr_finder import lr_find

    torch.manual_seed(config.train.seed)
    train_batches, _, image_shape = build_data(config)
    model = build_model(config, image_shape)
    objective = make_objective(
        build_schedule(config),
        objective=config.diffusion.objective,
        min_snr_gamma=config.diffusion.min_snr_gamma,
    )
    optimizer = partial(torch.optim.AdamW, weight_decay=config.train.weight_decay)
    result = lr_find(
        model,
        train_batches,
        objective,
        optimizer=optimizer,
        n_steps=n_steps,
        callbacks=[AccelerateCB(mixed_precision=config.train.mixed_precision)],
    )
    return {"suggestion": result.suggestion, "lrs": result.lrs, "losses": result.losses}
