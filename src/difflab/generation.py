"""Images from a trained noise-prediction network: the glue between a model and a sampler.

Used by `difflab sample`, `difflab eval`, and the sample-grid and FID callbacks during training.
Image k always comes from seed `seed + k`, so a grid is the same whatever the batch size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from difflab.diffusion import Schedule, as_noise_predictor
from difflab.samplers import SAMPLERS, sample_in_batches
from difflab.samplers.timesteps import skip_model_steps, timesteps_for


@dataclass(frozen=True)
class SamplingPlan:
    """Which sampler, how many steps, and the data range to clip x0 to (only if asked).

    `skip` names ddpm_skip's model-call schedule (samplers.timesteps.SKIP_SCHEDULES); it sets
    that sampler's model evaluations, and `steps` does not apply to it.
    """

    sampler: str = "ddim"
    steps: int = 25
    skip: str = "every_third"
    eta: float = 1.0  # as SampleConfig: the lower FID at 25 steps
    batch_size: int = 256
    clip_x0: tuple[float, float] | None = None
    bf16: bool = True


def model_evaluations(plan: SamplingPlan, n_train_steps: int) -> int:
    """Network evaluations per image (Heun pays two per step but the last)."""
    if plan.sampler == "ddpm_skip":
        # the sampler also calls the model at its first step, T-1, whatever the schedule
        return len(set(skip_model_steps(plan.skip, n_train_steps).tolist()) | {n_train_steps - 1})
    if plan.sampler == "heun":
        return 2 * ((plan.steps + 1) // 2) - 1
    return plan.steps


def _autocast(enabled: bool, device: torch.device):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _sampler_options(plan: SamplingPlan, n_train_steps: int) -> dict:
    """The sampler-specific keyword arguments the plan asks for."""
    if plan.sampler == "ddim":
        return {"eta": plan.eta}
    if plan.sampler == "ddpm_skip":
        return {"model_steps": skip_model_steps(plan.skip, n_train_steps)}
    return {}


@torch.no_grad()
def generate_images(
    model: torch.nn.Module,
    schedule: Schedule,
    *,
    objective: str,
    image_shape: tuple[int, int, int],
    seeds: list[int],
    plan: SamplingPlan,
    on_step: Callable | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Float images (N, C, H, W) in the data range, one per seed."""
    if plan.sampler not in SAMPLERS:
        raise ValueError(f"--sample.sampler: {plan.sampler!r} is not one of {', '.join(SAMPLERS)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    predict = as_noise_predictor(model, schedule, objective)

    def predict_noise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with _autocast(plan.bf16, device):
            return predict(x_t, t).float()

    timesteps = timesteps_for(
        plan.sampler, schedule.n_steps, plan.steps, alpha_bar=schedule.alpha_bar
    )
    extra = _sampler_options(plan, schedule.n_steps)
    try:
        return sample_in_batches(
            SAMPLERS[plan.sampler],
            predict_noise,
            seeds=seeds,
            shape=image_shape,
            batch_size=plan.batch_size,
            alpha_bar=schedule.alpha_bar,
            timesteps=timesteps,
            clip_x0=plan.clip_x0,
            on_step=on_step,
            progress=progress,
            **extra,
        )
    finally:
        model.train(was_training)
