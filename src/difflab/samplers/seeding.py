"""Sampling by seed: image k gets its own generator, so it is the same at any batch size."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from difflab.samplers.base import NoisePredictor, StepCallback, draw_noise
from difflab.samplers.registry import SamplingPlan


def image_generators(
    seeds: Sequence[int], *, device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One torch.Generator per image, seeded with that image's seed."""
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]


def initial_noise(
    seeds: Sequence[int] | Sequence[torch.Generator],
    shape: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """x_T ~ N(0, I) of shape (len(seeds), *shape); row k depends on seeds[k] only.

    `shape` is one image's shape (C, H, W). Given generators, they are advanced in place
    (that is how sample_in_batches keeps drawing the per-step noise from the same streams).
    """
    if len(seeds) == 0:
        raise ValueError("need at least one seed")
    gens = (
        seeds if isinstance(seeds[0], torch.Generator) else image_generators(seeds, device=device)
    )
    like = torch.empty((len(gens), *shape), device=gens[0].device, dtype=dtype)
    return draw_noise(like, gens)


def _with_condition(predict_noise, x_t: Tensor, t: Tensor, *, y: Tensor) -> Tensor:
    return predict_noise(x_t, t, y)


def sample_in_batches(
    plan: SamplingPlan,
    predict_noise: NoisePredictor,
    *,
    seeds: Sequence[int],
    shape: Sequence[int],
    batch_size: int,
    alpha_bar: Tensor,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    on_step: StepCallback | None = None,
    clip_x0: tuple[float, float] | None = None,
    conditions: Tensor | None = None,
) -> Tensor:
    """Draw len(seeds) images with `plan`, batch_size at a time; returns (N, *shape) on the CPU.

    `device` has no default: the noise is drawn where the network runs (a default of "cpu"
    once left a GPU model fed with CPU noise). Image k's initial noise and every per-step noise
    come from a generator seeded with seeds[k], so image k is identical whatever batch_size is
    (up to float reduction order inside the model, which can depend on the batch size on some
    backends). `conditions` (e.g. class labels, one per seed) are sliced like the seeds and
    handed to predict_noise as a third argument: the samplers themselves never see them.
    """
    if conditions is not None and len(conditions) != len(seeds):
        raise ValueError(f"got {len(conditions)} conditions for {len(seeds)} seeds")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (--sample.batch-size), got {batch_size}")
    outputs = []
    # disable=None: a bar on a terminal only, not carriage returns written into a log file.
    disable = None if progress else True
    with tqdm(total=len(seeds), unit="img", desc="sampling", disable=disable) as bar:
        for start in range(0, len(seeds), batch_size):
            gens = image_generators(seeds[start : start + batch_size], device=device)
            x_T = initial_noise(gens, shape, dtype=dtype)
            predict = predict_noise
            if conditions is not None:
                y = conditions[start : start + batch_size].to(x_T.device)
                predict = functools.partial(_with_condition, predict_noise, y=y)
            x0 = plan.run(predict, x_T, alpha_bar, generator=gens, on_step=on_step, clip_x0=clip_x0)
            outputs.append(x0.cpu())
            bar.update(len(gens))
    return torch.cat(outputs)
