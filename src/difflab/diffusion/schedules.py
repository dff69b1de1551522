"""Noise schedules: the discrete table alpha_bar_t and the maps between alpha_bar and sigma.

Notation block (used in every module of difflab.diffusion and difflab.samplers):
- DDPM (Ho et al. 2020) writes beta_t, alpha_t = 1 - beta_t and alpha_bar_t = prod_{s<=t} alpha_s.
- DDIM (Song, Meng & Ermon 2021) writes alpha_t for what DDPM calls alpha_bar_t; here alpha_bar
  everywhere.
- Karras et al. 2022 (EDM) work with x_sigma = x_t / sqrt(alpha_bar) and the noise level
  sigma = sqrt((1 - alpha_bar) / alpha_bar); DPM-Solver++ writes alpha_t = sqrt(alpha_bar) and
  sigma_t = sqrt(1 - alpha_bar) for the variance-preserving coefficients.
- Timesteps are 0-based: index t = 0 is the least noisy step, t = n_steps - 1 the noisiest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

ScheduleName = Literal["linear", "cosine", "edm"]

# Karras et al. 2022, Table 1 / Sec. 5: the noise levels EDM trains and samples between
EDM_SIGMA_MIN, EDM_SIGMA_MAX = 0.002, 80.0


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete variance-preserving schedule: float64 tensors of shape (n_steps,)."""

    beta: Tensor
    alpha: Tensor
    alpha_bar: Tensor

    @property
    def n_steps(self) -> int:
        """Number of discrete diffusion steps T."""
        return int(self.beta.shape[0])

    @classmethod
    def from_beta(cls, beta: Tensor) -> Schedule:
        """Build alpha = 1 - beta and alpha_bar = cumprod(alpha) (Ho et al. 2020, eq. 4 context)."""
        beta = torch.as_tensor(beta, dtype=torch.float64)
        if beta.ndim != 1 or beta.numel() < 2:
            raise ValueError(
                f"beta must be a 1-D tensor with >= 2 entries, got shape {tuple(beta.shape)}"
            )
        if not bool(((beta > 0) & (beta < 1)).all()):
            raise ValueError("every beta must lie in (0, 1)")
        alpha = 1.0 - beta
        return cls(beta=beta, alpha=alpha, alpha_bar=torch.cumprod(alpha, dim=0))

    @classmethod
    def from_alpha_bar(cls, alpha_bar: Tensor) -> Schedule:
        """The schedule whose cumulative product is `alpha_bar` (decreasing, in (0, 1))."""
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
        previous = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        return cls.from_beta(1.0 - alpha_bar / previous)


# --- Linear schedule, Ho et al. 2020, Sec. 4 (beta_1 = 1e-4 ... beta_T = 0.02) ---
def linear_schedule(
    n_steps: int = 1000, beta_min: float = 1e-4, beta_max: float = 0.02
) -> Schedule:
    """Betas evenly spaced from beta_min to beta_max (DDPM's choice; beta_max is configurable)."""
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    if not 0 < beta_min < beta_max < 1:
        raise ValueError(f"need 0 < beta_min < beta_max < 1, got {beta_min}, {beta_max}")
    return Schedule.from_beta(torch.linspace(beta_min, beta_max, n_steps, dtype=torch.float64))


# --- Cosine schedule, Nichol & Dhariwal 2021, eq. 17 and Sec. 3.2 (beta clipping) ---
def cosine_schedule(n_steps: int = 1000, *, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """alpha_bar_t = f(t)/f(0), f(t) = cos^2(((t/T) + s)/(1 + s) * pi/2), with betas clipped.

    Step index i (0-based) is the paper's t = i + 1, as in improved-diffusion and diffusers'
    "squaredcos_cap_v2": beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta).
    """
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    if not 0 < max_beta < 1:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}")
    u = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    beta = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return Schedule.from_beta(beta)


# --- EDM noise levels, Karras et al. 2022, Table 1 (sigma in [0.002, 80]) and eq. 2 (VE <-> VP) ---
def edm_schedule(
    n_steps: int = 1000, *, sigma_min: float = EDM_SIGMA_MIN, sigma_max: float = EDM_SIGMA_MAX
) -> Schedule:
    """A VP table over EDM's noise range: sigma_t log-spaced from sigma_min (t = 0) to sigma_max
    (t = T-1), alpha_bar_t = 1 / (1 + sigma_t^2), so x_t = x_sigma / sqrt(1 + sigma^2).

    Log spacing makes the log-sigma interpolation of fractional t (interpolation.py) exact: any
    sigma in the range, e.g. the rho = 7 steps of eq. 5, is reached without a table error.
    """
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    log_sigma = torch.linspace(
        math.log(sigma_min), math.log(sigma_max), n_steps, dtype=torch.float64
    )
    return Schedule.from_alpha_bar(alpha_bar_from_sigma(log_sigma.exp()))


def schedule_from_config(
    name: ScheduleName, n_steps: int, beta_min: float = 1e-4, beta_max: float = 0.02
) -> Schedule:
    """The schedule named by `--diffusion.schedule` (beta_min/beta_max only apply to linear)."""
    if name == "linear":
        return linear_schedule(n_steps, beta_min, beta_max)
    if name == "cosine":
        return cosine_schedule(n_steps)
    if name == "edm":
        return edm_schedule(n_steps)
    raise ValueError(
        f"unknown schedule {name!r}: choose 'linear', 'cosine' or 'edm' (--diffusion.schedule)"
    )


# --- Continuous cosine schedule, Nichol & Dhariwal 2021 eq. 17 with s = 0 and t in [0, 1] ---
def continuous_cosine_alpha_bar(t: Tensor) -> Tensor:
    """alpha_bar(t) = cos^2(t * pi / 2) for continuous time t in [0, 1]."""
    return torch.cos(t * (math.pi / 2)) ** 2


def continuous_cosine_t(alpha_bar: Tensor) -> Tensor:
    """Inverse of continuous_cosine_alpha_bar: t = (2 / pi) * arccos(sqrt(alpha_bar))."""
    return torch.arccos(alpha_bar.sqrt()) * (2 / math.pi)


# --- alpha_bar <-> sigma, Karras et al. 2022, Table 1 (VP column) / Sec. 2 ---
def sigma_from_alpha_bar(alpha_bar: Tensor) -> Tensor:
    """sigma = sqrt((1 - alpha_bar) / alpha_bar): the noise level of x_sigma = x_t / sqrt(alpha_bar)."""
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def alpha_bar_from_sigma(sigma: Tensor) -> Tensor:
    """alpha_bar = 1 / (1 + sigma^2), the inverse of sigma_from_alpha_bar."""
    return 1 / (1 + sigma**2)
