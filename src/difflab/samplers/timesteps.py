"""Pure functions that choose the timesteps a sampler visits (noisiest first).

linspace / leading / trailing follow diffusers' `timestep_spacing` definitions exactly (see
Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2);
trailing always starts at t = T-1, which is why it is our default for DDPM and DDIM.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from difflab.diffusion.interpolation import timestep_at_sigma
from difflab.diffusion.schedules import sigma_from_alpha_bar

EDM_SIGMA_MAX = 80.0  # Karras et al. 2022, Table 1 / Sec. 5


def _check_steps(n_train_steps: int, steps: int) -> None:
    if not 1 <= steps <= n_train_steps:
        raise ValueError(f"steps must be in [1, {n_train_steps}] (--sample.steps), got {steps}")


def full_chain(n_train_steps: int) -> Tensor:
    """Every step T-1, ..., 0: DDPM's original chain (Ho et al. 2020, Algorithm 2)."""
    return torch.arange(n_train_steps - 1, -1, -1, dtype=torch.int64)


def linspace_timesteps(n_train_steps: int, steps: int) -> Tensor:
    """round(linspace(0, T-1, steps)) reversed: starts at T-1 and ends at 0."""
    _check_steps(n_train_steps, steps)
    ts = np.linspace(0, n_train_steps - 1, steps).round()[::-1].astype(np.int64)
    return torch.from_numpy(ts.copy())


def leading_timesteps(n_train_steps: int, steps: int, *, offset: int = 0) -> Tensor:
    """k * (T // steps) + offset reversed: ends at `offset`, never reaches T-1 (DDIM paper's tau)."""
    _check_steps(n_train_steps, steps)
    ts = np.arange(0, steps) * (n_train_steps // steps) + offset
    if ts[-1] >= n_train_steps:
        raise ValueError(
            f"offset {offset} pushes the first timestep past T-1 = {n_train_steps - 1}"
        )
    return torch.from_numpy(ts[::-1].astype(np.int64).copy())


def trailing_timesteps(n_train_steps: int, steps: int) -> Tensor:
    """round(arange(T, 0, -T/steps)) - 1: starts at T-1, ends near T/steps - 1."""
    _check_steps(n_train_steps, steps)
    ts = np.round(np.arange(n_train_steps, 0, -n_train_steps / steps)).astype(np.int64) - 1
    return torch.from_numpy(ts)


# --- Karras et al. 2022, eq. 5 (rho = 7) ---
def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, *, rho: float = 7.0) -> Tensor:
    """sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i < N.

    Returns the N decreasing sigmas without the final sigma_N = 0 (samplers append it).
    """
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def karras_timesteps(
    alpha_bar: Tensor,
    steps: int,
    *,
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
) -> Tensor:
    """Fractional timesteps (float64) whose sigmas are Karras-spaced (eq. 5).

    sigma_min / sigma_max default to the schedule's ends (sigma at t = 0 and t = T-1) and are
    clamped to them; the t of each sigma comes from log-sigma interpolation of the table.
    """
    _check_steps(alpha_bar.shape[0], steps)
    sigma = sigma_from_alpha_bar(alpha_bar.detach().to("cpu", torch.float64))
    lo, hi = float(sigma[0]), float(sigma[-1])
    lo = lo if sigma_min is None else min(max(sigma_min, lo), hi)
    hi = hi if sigma_max is None else min(max(sigma_max, lo), hi)
    return timestep_at_sigma(alpha_bar, karras_sigmas(lo, hi, steps, rho=rho))


# --- Skip-step schedules of the reference work (fast.ai 2022 part 2, DDPM lessons) ---
def skip_every_third(n_train_steps: int, *, last: int = 50) -> Tensor:
    """Model steps: every third timestep, plus every one of the last `last` (t < last)."""
    return torch.tensor([t for t in range(n_train_steps - 1, -1, -1) if t % 3 == 0 or t < last])


def skip_growing(n_train_steps: int) -> Tensor:
    """Model steps {t : (t+101) % ((t+101)//100) == 0}: dense near t = 0, every 10th near t = 999."""
    steps = [t for t in range(n_train_steps - 1, -1, -1) if (t + 101) % ((t + 101) // 100) == 0]
    return torch.tensor(steps)


SKIP_SCHEDULES = {"every_third": skip_every_third, "growing": skip_growing}


def skip_model_steps(skip: str, n_train_steps: int) -> Tensor:
    """The timesteps at which ddpm_skip calls the model, by schedule name (--sample.skip)."""
    if skip not in SKIP_SCHEDULES:
        raise ValueError(f"--sample.skip: {skip!r} is not one of {', '.join(SKIP_SCHEDULES)}")
    return SKIP_SCHEDULES[skip](n_train_steps)
