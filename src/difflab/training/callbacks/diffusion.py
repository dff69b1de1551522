"""Diffusion-specific callbacks: a sample grid every N epochs, and FID every N epochs.

Both sample with the EMA weights (`eval_model`) on fixed seeds, so grids from different epochs
show the same starting noise and can be compared image by image.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difflab.training.callback import Callback
from difflab.training.standard import eval_model

if TYPE_CHECKING:  # pragma: no cover
    from difflab.config import RunConfig
    from difflab.training.learner import Learner

log = logging.getLogger("difflab.training")


class _EveryNEpochs(Callback):
    """Runs `on_epoch_end` on the main process after every `every`-th full epoch."""

    order = 60  # after EMA (so the EMA weights are current) and before checkpoints

    def __init__(self, every: int):
        if every < 0:
            raise ValueError(f"every must be >= 0, got {every}")
        self.every = every

    def after_epoch(self, learn: Learner) -> None:
        if not learn.is_last_phase or not learn.is_main_process or self.every == 0:
            return
        if (learn.epoch + 1) % self.every == 0 or learn.epoch + 1 == learn.n_epochs:
            self.on_epoch_end(learn)

    def on_epoch_end(self, learn: Learner) -> None:
        raise NotImplementedError


def sample_images(
    learn: Learner, config: RunConfig, image_shape, n: int, seed: int, *, per_class_rows=False
):
    """(images, grid columns): n images from the EMA weights (seeds seed + k), sampled as
    config.sample says, at the data's original size (the feature classifier and the grids see
    what the dataset holds). A conditional model draws classes in turn, or with
    `per_class_rows` one row per class (about n images)."""
    from difflab.generation import class_rows, generate_images
    from difflab.io.trained import trained_model

    trained = trained_model(eval_model(learn), config, image_shape)
    labels, ncols = class_rows(trained, n) if per_class_rows else (None, None)
    seeds = range(seed, seed + (n if labels is None else len(labels)))
    bf16 = config.train.mixed_precision == "bf16"
    # the guide model is written during the run: grids and FIDs in training show the model alone
    sample = dataclasses.replace(config.sample, autoguidance=1.0)
    images = generate_images(trained, sample, seeds=seeds, labels=labels, bf16=bf16, progress=False)
    return images, ncols


class SampleGridCB(_EveryNEpochs):
    """Writes `<folder>/epoch_NNN.png` (n images, fixed seeds) and reports it as an image."""

    def __init__(
        self, config: RunConfig, image_shape, folder: str | Path, *, every: int = 1, n: int = 64
    ):
        super().__init__(every)
        self.config, self.image_shape, self.folder, self.n = config, image_shape, Path(folder), n

    def on_epoch_end(self, learn: Learner) -> None:
        from difflab.data import to_uint8
        from difflab.io.images import save_grid

        images, ncols = sample_images(
            learn, self.config, self.image_shape, self.n, seed=0, per_class_rows=True
        )
        images = to_uint8(images, self.config.data.low, self.config.data.high)
        path = self.folder / f"epoch_{learn.epoch + 1:03d}.png"
        save_grid(images, path, scale=2, ncols=ncols)
        learn.report_file("samples", path, "image")


class EvalCB(_EveryNEpochs):
    """Reports `fid` (and `fid_floor`) of n samples against the evaluator's reference."""

    def __init__(
        self, config: RunConfig, image_shape, evaluator: Any, *, every: int = 1, n: int = 512
    ):
        super().__init__(every)
        self.config, self.image_shape, self.evaluator, self.n = config, image_shape, evaluator, n

    def on_epoch_end(self, learn: Learner) -> None:
        images, _ = sample_images(learn, self.config, self.image_shape, self.n, seed=10_000)
        result = self.evaluator.fid(images).to_dict()
        log.info(
            "epoch %d: FID %.3f (real-data floor %s) at n=%d",
            learn.epoch + 1,
            result["fid"],
            result.get("fid_floor"),
            self.n,
        )
        learn.report("fid", result["fid"])
        if result.get("fid_floor") is not None:
            learn.report("fid_floor", result["fid_floor"])
