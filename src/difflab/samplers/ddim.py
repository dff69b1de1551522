"""DDIM sampling on any decreasing sub-sequence tau of timesteps."""

from __future__ import annotations

from torch import Tensor

from difflab.diffusion.parameterisation import eps_from_x0, x0_from_eps
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


# --- DDIM, Song, Meng & Ermon 2021, eqs. 12 and 16 ---
# DDIM writes alpha_t for what DDPM calls alpha_bar_t; here alpha_bar everywhere.
def ddim_sigma(ab_t: float, ab_prev: float, eta: float) -> float:
    """sigma_t(eta) = eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev), eq. 16."""
    return eta * ((1 - ab_prev) / (1 - ab_t)) ** 0.5 * (1 - ab_t / ab_prev) ** 0.5


def ddim_step(
    x0_hat: Tensor, eps: Tensor, ab_prev: float, sigma: float, noise: Tensor | None
) -> Tensor:
    """x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma z, eq. 12."""
    # max(0, .): eta > 1 can make the direction's variance negative; it then vanishes
    x_prev = ab_prev**0.5 * x0_hat + max(0.0, 1 - ab_prev - sigma**2) ** 0.5 * eps
    if noise is not None:
        x_prev = x_prev + sigma * noise
    return x_prev


def sample_ddim(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    generator: Generators = None,
    on_step: StepCallback | None = None,
    clip_x0: tuple[float, float] | None = None,
    eta: float,
) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eqs. 12 and 16). eta=0 deterministic, eta=1 ~ DDPM.

    eta has no default here: its one default is SampleConfig.eta (difflab.config).

    After the last timestep alpha_bar_prev = 1, so the result is the last x0 prediction.
    With clip_x0, eps is re-derived from the clipped x0 so that the step stays consistent
    (diffusers' use_clipped_model_output=True). With eta > 0 noise is drawn at every step,
    as diffusers does, so per-step noise streams match.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (--sample.eta), got {eta}")
    plan = plan_steps(alpha_bar, timesteps)
    x_t = x_T.to(work_dtype(x_T))
    for i, (t, ab_t, ab_prev) in enumerate(zip(plan.t, plan.alpha_bar, plan.alpha_bar_next)):
        eps = call_model(predict_noise, x_t, t, plan.fractional)
        # 1. predict x0 ("predicted x0" term of eq. 12)
        x0_hat = x0_from_eps(x_t, eps, ab_t)
        if clip_x0 is not None:
            x0_hat = clip(x0_hat, clip_x0)
            eps = eps_from_x0(x_t, x0_hat, ab_t)
        if on_step is not None:
            on_step(StepInfo(i, t, x_t, x0_hat))
        # 2. direction to x_t and 3. sigma_t * z (eqs. 12 and 16)
        sigma = ddim_sigma(ab_t, ab_prev, eta)
        noise = draw_noise(x_t, generator) if eta > 0 else None
        x_t = ddim_step(x0_hat, eps, ab_prev, sigma, noise)
    return x_t
