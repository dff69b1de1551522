"""DPM-Solver++(2M): multistep second-order solver in data-prediction form."""

from __future__ import annotations

import math

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
    plan_steps,
    work_dtype,
)


# --- DPM-Solver++(2M), Lu et al. 2022 (arXiv:2211.01095), Algorithm 2 ---
# Paper notation: alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t),
# lambda_t = log(alpha_t / sigma_t) (half log-SNR), h_i = lambda_{t_i} - lambda_{t_{i-1}}.
def _half_log_snr(ab: float) -> float:
    return 0.5 * math.log(ab / (1 - ab))


def sample_dpmpp_2m(
    predict_noise: NoisePredictor,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: Timesteps,
    *,
    generator: Generators = None,
    on_step: StepCallback | None = None,
    clip_x0: tuple[float, float] | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), one model call per timestep.

    The first step is first order (one x0 prediction only); the last step goes to
    alpha_bar = 1 where h is infinite and the update reduces to x0_hat (first order, like
    diffusers' lower_order_final / final_sigmas_type="zero"). Deterministic: `generator` unused.
    """
    del generator  # deterministic solver; kept for the common signature
    plan = plan_steps(alpha_bar, timesteps)
    x = x_T.to(work_dtype(x_T))
    x0_prev, h_prev = None, None
    for i, (t, ab_t, ab_next) in enumerate(zip(plan.t, plan.alpha_bar, plan.alpha_bar_next)):
        # 1. data prediction x0_hat = (x_t - sigma_t eps) / alpha_t
        eps = call_model(predict_noise, x, t, plan.fractional)
        x0_hat = clip(x0_from_eps(x, eps, ab_t), clip_x0)
        if on_step is not None:
            on_step(StepInfo(i, t, x, x0_hat))
        if ab_next >= 1.0:  # final step to sigma = 0: lambda = inf, x_next = x0_hat
            x = x0_hat
            break
        # 2. D_i = (1 + 1/(2 r_i)) x0_i - 1/(2 r_i) x0_{i-1}, r_i = h_{i-1} / h_i (first step: x0_i)
        h = _half_log_snr(ab_next) - _half_log_snr(ab_t)
        d = x0_hat
        if x0_prev is not None:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0_hat - (1 / (2 * r)) * x0_prev
        # 3. x_{t_i} = (sigma_i / sigma_{i-1}) x - alpha_i (e^{-h} - 1) D_i
        sigma_ratio = ((1 - ab_next) / (1 - ab_t)) ** 0.5
        x = sigma_ratio * x - ab_next**0.5 * math.expm1(-h) * d
        x0_prev, h_prev = x0_hat, h
    return x
