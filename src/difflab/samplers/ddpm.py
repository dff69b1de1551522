"""Ancestral DDPM sampling, on any decreasing sub-sequence of timesteps, and its skip-step variant."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from torch import Tensor

from difflab.diffusion.parameterisation import x0_from_eps
from difflab.samplers.base import (
    Generators,
    NoisePredictor,
    StepCallback,
    StepInfo,
    Timesteps,
    call_model,
    clip,
    draw_noise,
    plan_steps,
    work_dtype,
)
from difflab.samplers.timesteps import skip_every_third

Variance = Literal["beta_tilde", "beta"]


# --- DDPM, Ho et al. 2020, Algorithm 2, with the mean written as eqs. 6-7 and 15 ---
# On a sub-sequence t > s the step uses the respaced beta_t = 1 - alpha_bar_t / alpha_bar_s
# (Nichol & Dhariwal 2021, Sec. 4), so the full chain is the special case s = t - 1.
def ddpm_step(
    x_t: Tensor,
    x0_hat: Tensor,
    ab_t: float,
    ab_prev: float,
    noise: Tensor | None,
    *,
    variance: Variance = "beta_tilde",
) -> Tensor:
    """One step x_t -> x_prev given the (possibly clipped) x0 prediction."""
    beta_t = 1 - ab_t / ab_prev
    # 1. posterior mean mu_tilde(x_t, x0_hat), eq. 7
    coef_x0 = ab_prev**0.5 * beta_t / (1 - ab_t)
    coef_xt = (1 - beta_t) ** 0.5 * (1 - ab_prev) / (1 - ab_t)
    x_prev = coef_x0 * x0_hat + coef_xt * x_t
    # 2. add sigma_t * z: sigma_t^2 = beta_tilde_t (eq. 7, "fixed_small") or beta_t ("fixed_large")
    if noise is not None:
        var = beta_t * (1 - ab_prev) / (1 - ab_t) if variance == "beta_tilde" else beta_t
        x_prev = x_prev + var**0.5 * noise
    return x_prev


def _run_ddpm(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    model_steps: set[int] | None,
    generator: Generators,
    on_step: StepCallback | None,
    clip_x0: tuple[float, float] | None,
    variance: Variance,
) -> Tensor:
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}")
    plan = plan_steps(alpha_bar, timesteps)
    x_t = x_T.to(work_dtype(x_T))
    eps = None
    for i, (t, ab_t, ab_prev) in enumerate(zip(plan.t, plan.alpha_bar, plan.alpha_bar_next)):
        if eps is None or model_steps is None or t in model_steps:
            eps = call_model(predict_noise, x_t, t, plan.fractional)
        x0_hat = clip(x0_from_eps(x_t, eps, ab_t), clip_x0)  # eq. 15
        if on_step is not None:
            on_step(StepInfo(i, t, x_t, x0_hat))
        last = i == len(plan.t) - 1  # the last step returns the mean (no noise), as Algorithm 2
        noise = None if last else draw_noise(x_t, generator)
        x_t = ddpm_step(x_t, x0_hat, ab_t, ab_prev, noise, variance=variance)
    return x_t


def sample_ddpm(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    generator: Generators = None,
    on_step: StepCallback | None = None,
    clip_x0: tuple[float, float] | None = None,
    variance: Variance = "beta_tilde",
) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) over `timesteps`.

    variance="beta_tilde" (default) is the posterior variance, diffusers' DDPMScheduler
    "fixed_small"; "beta" is DDPM's other choice sigma_t^2 = beta_t ("fixed_large").
    Noise is drawn at every step but the last.
    """
    return _run_ddpm(
        predict_noise,
        x_T,
        alpha_bar,
        timesteps,
        model_steps=None,
        generator=generator,
        on_step=on_step,
        clip_x0=clip_x0,
        variance=variance,
    )


def sample_ddpm_skip(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    generator: Generators = None,
    on_step: StepCallback | None = None,
    clip_x0: tuple[float, float] | None = None,
    model_steps: Collection[int] | Tensor | None = None,
    variance: Variance = "beta_tilde",
) -> Tensor:
    """DDPM that calls the model only at `model_steps` and reuses the last eps in between.

    Walks every timestep in `timesteps` (usually the full chain) with DDPM's update; the model
    is always called at the first step. model_steps=None means skip_every_third(T): every third
    step plus the last 50 (the reference work's first schedule; see also skip_growing).
    """
    if model_steps is None:
        model_steps = skip_every_third(int(alpha_bar.shape[0]))
    wanted = {
        int(t) for t in (model_steps.tolist() if isinstance(model_steps, Tensor) else model_steps)
    }
    return _run_ddpm(
        predict_noise,
        x_T,
        alpha_bar,
        timesteps,
        model_steps=wanted,
        generator=generator,
        on_step=on_step,
        clip_x0=clip_x0,
        variance=variance,
    )
