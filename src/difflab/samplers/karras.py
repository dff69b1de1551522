"""Euler and Heun samplers of Karras et al. 2022 on a discrete eps model.

The eps model lives in variance-preserving space x_t = sqrt(alpha_bar) (x0 + sigma eps); these
samplers integrate in x_sigma = x_t / sqrt(alpha_bar), where x_sigma = x0 + sigma * eps and the
denoiser is D(x_sigma; sigma) = x_sigma - sigma * eps(sqrt(alpha_bar) x_sigma, t(sigma))
(Karras et al. 2022, Table 1, VP column). Off-grid sigmas (churn) map to fractional t by log-sigma
interpolation of the discrete schedule (difflab.diffusion.interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from difflab.diffusion.interpolation import sigma_at, timestep_at_sigma
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


@dataclass(frozen=True)
class Churn:
    """Karras et al. 2022, Algorithm 2 stochasticity: S_churn, S_tmin, S_tmax, S_noise."""

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0

    def gamma(self, sigma: float, n_steps: int) -> float:
        """gamma_i = min(S_churn / N, sqrt(2) - 1) inside [S_tmin, S_tmax], else 0."""
        if self.s_churn <= 0 or not self.s_tmin <= sigma <= self.s_tmax:
            return 0.0
        return min(self.s_churn / n_steps, 2**0.5 - 1)


class _Denoiser:
    """D(x_sigma; sigma) from an eps model: x_sigma - sigma * eps(x_sigma / sqrt(1 + sigma^2), t)."""

    def __init__(
        self, predict_noise: NoisePredictor, alpha_bar: Tensor, clip_x0: tuple[float, float] | None
    ) -> None:
        self.predict_noise, self.alpha_bar, self.clip_x0 = predict_noise, alpha_bar, clip_x0

    def __call__(self, x: Tensor, sigma: float, t: int | float, fractional: bool) -> Tensor:
        x_t = x * (1 + sigma**2) ** -0.5  # sqrt(alpha_bar) = 1 / sqrt(1 + sigma^2)
        eps = call_model(self.predict_noise, x_t, t, fractional)
        return clip(x - sigma * eps, self.clip_x0)

    def timestep(self, sigma: float) -> float:
        return float(timestep_at_sigma(self.alpha_bar, sigma))


# --- Karras et al. 2022, Algorithm 1 (Euler; Heun = 2nd order) and Algorithm 2 (churn) ---
def _sample_karras(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    generator: Generators,
    on_step: StepCallback | None,
    clip_x0: tuple[float, float] | None,
    churn: Churn,
    second_order: bool,
) -> Tensor:
    plan = plan_steps(alpha_bar, timesteps)
    sigmas = [*sigma_at(alpha_bar, torch.tensor(plan.t, dtype=torch.float64)).tolist(), 0.0]
    denoise = _Denoiser(predict_noise, alpha_bar, clip_x0)
    x = x_T.to(work_dtype(x_T)) * (1 + sigmas[0] ** 2) ** 0.5  # x_sigma = x_T / sqrt(alpha_bar)
    for i, t in enumerate(plan.t):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        # 1. churn: raise the noise level to sigma_hat = sigma (1 + gamma) (Algorithm 2, lines 4-6)
        gamma = churn.gamma(sigma, len(plan.t))
        sigma_hat, t_hat, fractional = sigma, t, plan.fractional
        if gamma > 0:
            sigma_hat = sigma * (1 + gamma)
            t_hat, fractional = denoise.timestep(sigma_hat), True
            x = x + churn.s_noise * (sigma_hat**2 - sigma**2) ** 0.5 * draw_noise(x, generator)
        # 2. Euler step along d = (x - D) / sigma (Algorithm 1, lines 4-5)
        x0_hat = denoise(x, sigma_hat, t_hat, fractional)
        if on_step is not None:
            on_step(StepInfo(i, t, x * (1 + sigma_hat**2) ** -0.5, x0_hat))
        d = (x - x0_hat) / sigma_hat
        x_next = x + (sigma_next - sigma_hat) * d
        # 3. Heun correction with the slope at sigma_next, unless sigma_next = 0 (lines 6-8)
        if second_order and sigma_next > 0:
            x0_next = denoise(x_next, sigma_next, plan.t[i + 1], plan.fractional)
            d_next = (x_next - x0_next) / sigma_next
            x_next = x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
        x = x_next
    return x


def sample_euler(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    generator: Generators = None,
    on_step: StepCallback | None = None,
    clip_x0: tuple[float, float] | None = None,
    churn: Churn | None = None,
) -> Tensor:
    """Euler (Karras et al. 2022, Algorithm 1 first order; Algorithm 2 when churn is given).

    One model call per timestep; the last step goes to sigma = 0. x_T ~ N(0, I) in VP space.
    """
    return _sample_karras(
        predict_noise,
        x_T,
        alpha_bar,
        timesteps,
        generator=generator,
        on_step=on_step,
        clip_x0=clip_x0,
        churn=churn or Churn(),
        second_order=False,
    )


def sample_heun(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    generator: Generators = None,
    on_step: StepCallback | None = None,
    clip_x0: tuple[float, float] | None = None,
    churn: Churn | None = None,
) -> Tensor:
    """Heun (Karras et al. 2022, Algorithms 1-2; churn off by default): 2N - 1 model calls."""
    return _sample_karras(
        predict_noise,
        x_T,
        alpha_bar,
        timesteps,
        generator=generator,
        on_step=on_step,
        clip_x0=clip_x0,
        churn=churn or Churn(),
        second_order=True,
    )
