"""Train the autoencoder of latent diffusion with the Learner, in a run folder, and write it
with its card: reconstruction MSE, reconstruction FID (which bounds the FID of any latent
diffusion model decoded through it) beside the real-data floor, and the latents' scale factor.

    difflab autoencoder train --dataset fashion_mnist --out models/ae-f4c4

The run folder (runs/NNNNN-<dataset>-autoencoder) holds config.json, checkpoints and metrics,
so `difflab runs`, the board and `--resume RUN_DIR` work as for a diffusion run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from difflab.config.autoencoder import AutoencoderConfig
from difflab.models.autoencoder import Autoencoder, AutoencoderArch, autoencoder_loss, scale_factor
from difflab.training.callback import Callback

log = logging.getLogger("difflab")

PRESET_NAME = "autoencoder"  # what the run store shows as the run's model preset


def run_config_dict(config: AutoencoderConfig) -> dict[str, Any]:
    """config.json of an autoencoder run: the config under "autoencoder", plus the "data" and
    "model" facts the run store indexes (dataset, preset)."""
    return {
        "autoencoder": dataclasses.asdict(config),
        "data": {"dataset": config.dataset},
        "model": {"preset": PRESET_NAME},
    }


def config_from_run(config: dict[str, Any]) -> AutoencoderConfig:
    """The AutoencoderConfig of an autoencoder run's config.json (refused for another run)."""
    section = config.get("autoencoder")
    if not isinstance(section, dict):
        raise ValueError("config.json: not an autoencoder run (no 'autoencoder' section)")
    return AutoencoderConfig(**section)


def autoencoder_objective(config: AutoencoderConfig, features=None):
    """objective(model, (x, y)) -> reconstruction MSE + kl_weight * KL per latent element
    [+ perceptual_weight * MSE of the feature model's pooled features]."""

    def objective(model, batch) -> torch.Tensor:
        x, _ = batch
        x_hat, mu, logvar = model(x)
        loss, _, _ = autoencoder_loss(x, x_hat, mu, logvar, kl_weight=config.kl_weight)
        if features is not None and config.perceptual_weight > 0:
            real = features(x.float()).detach()
            loss = loss + config.perceptual_weight * F.mse_loss(features(x_hat.float()), real)
        return loss

    return objective


def _evaluator(config: AutoencoderConfig, image_shape):
    """The dataset's FID evaluator, or None (logged) where it has no feature model."""
    from difflab.metrics.feature_models import FeatureModelError, load_feature_evaluator

    try:
        return load_feature_evaluator(
            config.dataset, image_shape=image_shape, data_root=config.root
        )
    except FeatureModelError as err:
        if config.perceptual_weight > 0:
            raise ValueError(f"--perceptual-weight: {err}") from err
        log.warning("no reconstruction FID: %s", err)
        return None


def _feature_fn(evaluator, config: AutoencoderConfig):
    """Differentiable pooled features of the evaluator's classifier (frozen, eval mode), on
    images in the autoencoder's range mapped to the classifier's."""
    fm = evaluator.feature_model
    module = fm.module.requires_grad_(False).eval()
    gain = (fm.high - fm.low) / (config.high - config.low)

    def features(x: torch.Tensor) -> torch.Tensor:
        module.to(x.device)
        return module.features((x - config.low) * gain + fm.low)

    return features


def train_autoencoder(
    config: AutoencoderConfig,
    *,
    out: str | Path | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    trackers: str = "local",
    resume: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume `resume`, a run folder), measure, and write the autoencoder into the
    run folder and into `out` (on `config.threads` CPU threads); returns its card."""
    from difflab.training.fit_classifier import torch_threads

    with torch_threads(config.threads):
        return _train(config, out, runs_dir, name, trackers, resume, progress)


def _train(config, out, runs_dir, name, trackers, resume, progress) -> dict[str, Any]:
    from difflab.data import InMemoryBatches, load_images
    from difflab.tracking.base import make_trackers
    from difflab.tracking.run_folder import create_run_folder
    from difflab.training import Learner, standard_callbacks
    from difflab.training.callbacks import ProgressCB
    from difflab.training.callbacks.budget import with_budget
    from difflab.training.callbacks.tracking import TrackingCallback

    train = load_images(config.dataset, "train", root=config.root)
    images = train.images[: config.limit]
    batches = InMemoryBatches(
        images, None, batch_size=min(config.batch_size, len(images)), low=config.low,
        high=config.high, seed=config.seed,
    )  # fmt: skip
    image_shape = tuple(int(n) for n in images.shape[1:])
    evaluator = _evaluator(config, image_shape)
    features = _feature_fn(evaluator, config) if config.perceptual_weight > 0 else None
    run_dir = Path(resume) if resume is not None else None
    if run_dir is None:
        run_dir = create_run_folder(
            runs_dir, run_config_dict(config), dataset=config.dataset, preset=PRESET_NAME, name=name
        )
        log.info("run folder: %s", run_dir)
    torch.manual_seed(config.seed)
    model = Autoencoder(
        AutoencoderArch(image_shape, config.downsample, config.latent_channels, config.width)
    )
    callbacks = standard_callbacks(
        mixed_precision=config.mixed_precision, warmup=config.warmup, ema_decay=0.0,
        checkpoint_every=config.checkpoint_every, progress=False, run_dir=run_dir,
    )  # fmt: skip
    if config.minutes:
        callbacks = with_budget(callbacks, config.minutes * 60)
    record = run_config_dict(config)
    tracking = TrackingCallback(make_trackers(trackers, run_dir, record, runs_dir=run_dir.parent))
    save = SaveAutoencoderCB(config, images, evaluator, out)
    learn = Learner(
        model, batches, autoencoder_objective(config, features), lr=config.lr,
        optimizer=partial(torch.optim.AdamW, weight_decay=config.weight_decay),
        callbacks=[*callbacks, ProgressCB(tty=None if progress else False), save, tracking],
        run_dir=run_dir, config=record,
    )  # fmt: skip
    learn.fit(config.epochs, resume=resume)
    return _early_stop(learn, run_dir) or save.card


class SaveAutoencoderCB(Callback):
    """When the fit ends normally: measure the autoencoder, report recon/* and scale_factor
    (so `difflab runs` and the board show them), write it into RUN/autoencoder and `out`."""

    order = 80  # before the trackers finish (TrackingCallback: 90)

    def __init__(self, config: AutoencoderConfig, images, evaluator, out) -> None:
        self.config, self.images, self.evaluator, self.out = config, images, evaluator, out
        self.card: dict[str, Any] = {}
        self._start: tuple[float, int] | None = None

    def before_epoch(self, learn) -> None:
        if self._start is None:  # after a resume has restored the step count
            self._start = (time.perf_counter(), learn.step)

    def after_fit(self, learn) -> None:
        seconds, first_step = time.perf_counter() - self._start[0], self._start[1]
        model = learn.unwrapped_model().cpu().eval()
        card = measure_autoencoder(model, self.images, self.config, self.evaluator)
        card.update(
            dataset=self.config.dataset, low=self.config.low, high=self.config.high,
            steps=learn.step, train_seconds=round(seconds, 1),
            images_per_s=round((learn.step - first_step) * learn.train_data.batch_size / seconds, 1),
            train_config=dataclasses.asdict(self.config), run_dir=str(learn.run_dir),
        )  # fmt: skip
        for name in ("recon_mse", "recon_fid", "recon_fid_floor", "scale_factor"):
            if card[name] is not None:
                learn.report(name.replace("recon_", "recon/"), card[name])
        self.card = write_autoencoder(model, card, learn.run_dir, self.out)
        learn.report_file(
            "autoencoder", learn.run_dir / "autoencoder" / "model.safetensors", "artifact"
        )


def _early_stop(learn, run_dir: Path) -> dict[str, Any] | None:
    """None when the fit ended normally; else why it stopped (nothing is written then)."""
    from difflab.training import stopped_by_nonfinite, stopped_by_signal

    reason = "signal" if stopped_by_signal(learn) is not None else None
    reason = "nonfinite" if reason is None and stopped_by_nonfinite(learn) else reason
    if reason is None:
        return None
    log.warning(
        "stopped (%s) after step %d; no autoencoder written; continue with "
        "`difflab autoencoder train --resume %s`", reason, learn.step, run_dir,
    )  # fmt: skip
    return {"run_dir": str(run_dir), "steps": learn.step, "stop_reason": reason}


def write_autoencoder(model, card: dict[str, Any], run_dir: Path, out) -> dict[str, Any]:
    """The autoencoder into the run folder and into `out`; the card (with both paths)."""
    from difflab.io.autoencoder import save_autoencoder

    folders = [run_dir / "autoencoder", *([Path(out)] if out is not None else [])]
    for folder in folders:
        save_autoencoder(folder, model, card)
    card = {**card, "path": str(folders[-1])}
    log.info(
        "autoencoder %s: reconstruction MSE %.5f, FID %s (floor %s), scale factor %.4f",
        card["path"], card["recon_mse"], card["recon_fid"], card["recon_fid_floor"],
        card["scale_factor"],
    )  # fmt: skip
    return card


@torch.no_grad()
def measure_autoencoder(model: Autoencoder, images, config: AutoencoderConfig, evaluator):
    """scale factor (1 / std of the latent means of every training image), reconstruction MSE
    and FID of `recon_n` training images: the same random subset (seed 0) as the evaluator's
    real-data floor when every training image is used, so recon FID - floor is the
    autoencoder's own loss."""
    from difflab.data.scaling import scale_images

    means = torch.cat([
        model.encode(scale_images(images[i : i + 512], config.low, config.high))[0]
        for i in range(0, len(images), 512)
    ])  # fmt: skip
    n = min(config.recon_n, len(images))
    index = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n].sort()
    x = scale_images(images[index.values.numpy()], config.low, config.high)
    x_hat = torch.cat([model.decode(model.encode(x[i : i + 512])[0]) for i in range(0, n, 512)])
    fid = evaluator.fid(x_hat.clamp(config.low, config.high)) if evaluator is not None else None
    return {
        "scale_factor": scale_factor(means),
        "latent_std": float(means.double().std()),
        "recon_mse": float(F.mse_loss(x_hat, x)),
        "recon_n": n,
        "recon_fid": None if fid is None else round(fid.fid, 4),
        "recon_fid_floor": None if fid is None or fid.floor is None else round(fid.floor, 4),
    }
