"""Images from a trained model: the glue between a network and a registered sampler.

Used by `difflab sample`, `difflab eval`, quickstart, and the sample-grid and FID callbacks
during training. Image k always comes from seed `seed + k`, so a grid is the same whatever the
batch size. The sampling config (difflab.config.SampleConfig) is passed whole: it holds the one
default of every sampling option, and the registry entry of its sampler reads what it needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from difflab.config import SampleConfig
from difflab.data.scaling import crop_padding
from difflab.diffusion import as_noise_predictor
from difflab.io.trained import TrainedModel
from difflab.samplers import SamplingPlan, sample_in_batches, sampler_spec


def pick_device(name: str = "auto") -> torch.device:
    """--device: "auto" is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device: {name!r} is not a device (auto, cpu, cuda, cuda:1)") from err


def sampling_plan(trained: TrainedModel, sample: SampleConfig) -> SamplingPlan:
    """The registered sampler's timesteps, options and cost for this model's schedule."""
    return sampler_spec(sample.sampler).plan(trained.schedule.alpha_bar, sample)


def _autocast(enabled: bool, device: torch.device):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def generate_images(
    trained: TrainedModel,
    sample: SampleConfig,
    *,
    seeds: Sequence[int] | None = None,
    bf16: bool = True,
    on_step: Callable | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Float images (N, C, H, W) in the data range at the dataset's size (padding cropped).

    seeds: one per image (default: sample.seed + k for k < sample.n). The noise is drawn on
    the model's device; the network runs under bf16 autocast when `bf16`, the sampler's
    arithmetic in float32 whatever the network's dtype.
    """
    seeds = list(range(sample.seed, sample.seed + sample.n)) if seeds is None else list(seeds)
    plan = sampling_plan(trained, sample)
    model, device = trained.model, trained.device
    was_training = model.training
    model.eval()
    predict = as_noise_predictor(model, trained.schedule, trained.objective)

    def predict_noise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with _autocast(bf16, device):
            return predict(x_t, t).float()

    try:
        images = sample_in_batches(
            plan,
            predict_noise,
            seeds=seeds,
            shape=trained.image_shape,
            batch_size=sample.batch_size,
            alpha_bar=trained.schedule.alpha_bar,
            device=device,
            on_step=on_step,
            clip_x0=(trained.low, trained.high) if sample.clip_x0 else None,
            progress=progress,
        )
    finally:
        model.train(was_training)
    return crop_padding(images, trained.pad)
