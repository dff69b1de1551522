"""Diffusion-specific callbacks: a sample grid every N epochs, and FID every N epochs.

Both sample with the EMA weights (`eval_model`) on fixed seeds, so grids from different epochs
show the same starting noise and can be compared image by image.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difflab.training.callback import Callback
from difflab.training.standard import eval_model

if TYPE_CHECKING:  # pragma: no cover
    from difflab.diffusion import Schedule
    from difflab.generation import SamplingPlan
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


class DiffusionSampling:
    """What both callbacks need to draw images from the model being trained."""

    def __init__(
        self,
        *,
        schedule: Schedule,
        objective: str,
        image_shape: tuple[int, int, int],
        plan: SamplingPlan,
        low: float,
        high: float,
        pad: int = 0,
    ):
        self.schedule, self.objective, self.image_shape = schedule, objective, image_shape
        self.plan, self.low, self.high, self.pad = plan, low, high, pad

    def images(self, learn: Learner, n: int, seed: int = 0):
        """n images at the data's original size: training padding is cropped (the feature
        classifier and the grids see what the dataset holds)."""
        from difflab.data import crop_padding
        from difflab.generation import generate_images

        images = generate_images(
            eval_model(learn),
            self.schedule,
            objective=self.objective,
            image_shape=self.image_shape,
            seeds=list(range(seed, seed + n)),
            plan=self.plan,
            progress=False,
        )
        return crop_padding(images, self.pad)


class SampleGridCB(_EveryNEpochs):
    """Writes `<folder>/epoch_NNN.png` (n images, fixed seeds) and reports it as an image."""

    def __init__(
        self, sampling: DiffusionSampling, folder: str | Path, *, every: int = 1, n: int = 64
    ):
        super().__init__(every)
        self.sampling, self.folder, self.n = sampling, Path(folder), n

    def on_epoch_end(self, learn: Learner) -> None:
        from difflab.data import to_uint8
        from difflab.io.images import save_grid

        images = to_uint8(
            self.sampling.images(learn, self.n), self.sampling.low, self.sampling.high
        )
        path = self.folder / f"epoch_{learn.epoch + 1:03d}.png"
        save_grid(images, path, scale=2)
        learn.report_file("samples", path, "image")


class EvalCB(_EveryNEpochs):
    """Reports `fid` (and `fid_floor`) of n samples against the evaluator's reference."""

    def __init__(
        self, sampling: DiffusionSampling, evaluator: Any, *, every: int = 1, n: int = 512
    ):
        super().__init__(every)
        self.sampling, self.evaluator, self.n = sampling, evaluator, n

    def on_epoch_end(self, learn: Learner) -> None:
        images = self.sampling.images(learn, self.n, seed=10_000)
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
