"""Fractional timesteps on a discrete schedule (needed by Karras-style samplers).

A discrete model knows alpha_bar only at t = 0, 1, ..., T-1. Samplers that work in sigma
(Euler, Heun with churn, Karras rho-spaced sigmas) need the t that belongs to an arbitrary sigma
and back. We interpolate log(sigma) linearly between neighbouring integer timesteps, in both
directions, as k-diffusion's DiscreteSchedule and diffusers' `_sigma_to_t` do; so
t -> sigma -> t is the identity and integer t give the table's values exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.diffusion.schedules import alpha_bar_from_sigma, sigma_from_alpha_bar


def _log_sigmas(alpha_bar: Tensor) -> Tensor:
    """log(sigma_t) for every discrete t, float64 on the CPU, increasing in t."""
    return sigma_from_alpha_bar(alpha_bar.detach().to("cpu", torch.float64)).log()


def sigma_at(alpha_bar: Tensor, t: Tensor | float) -> Tensor:
    """sigma at (possibly fractional) timesteps t in [0, T-1]; float64, same shape as t."""
    log_sigma = _log_sigmas(alpha_bar)
    t = torch.as_tensor(t, dtype=torch.float64, device="cpu")
    last = log_sigma.shape[0] - 1
    if bool(((t < 0) | (t > last)).any()):
        raise ValueError(f"timesteps must lie in [0, {last}], got min {t.min()}, max {t.max()}")
    low = t.floor().long().clamp(max=last - 1)
    w = t - low
    return torch.exp((1 - w) * log_sigma[low] + w * log_sigma[low + 1])


def alpha_bar_at(alpha_bar: Tensor, t: Tensor | float | int) -> Tensor:
    """alpha_bar at timesteps t: a table lookup for integers, log-sigma interpolation otherwise."""
    t = torch.as_tensor(t, device="cpu")
    if not t.is_floating_point():
        table = alpha_bar.detach().to("cpu", torch.float64)
        if bool(((t < 0) | (t >= table.shape[0])).any()):
            raise ValueError(f"timesteps must lie in [0, {table.shape[0] - 1}]")
        return table[t]
    return alpha_bar_from_sigma(sigma_at(alpha_bar, t))


def timestep_at_sigma(alpha_bar: Tensor, sigma: Tensor | float) -> Tensor:
    """The fractional t whose interpolated sigma is `sigma` (clamped to the table's range)."""
    log_sigma = _log_sigmas(alpha_bar)
    log_s = torch.as_tensor(sigma, dtype=torch.float64, device="cpu").clamp(min=1e-300).log()
    log_s = log_s.clamp(log_sigma[0], log_sigma[-1])
    low = (torch.searchsorted(log_sigma, log_s) - 1).clamp(0, log_sigma.shape[0] - 2)
    w = (log_s - log_sigma[low]) / (log_sigma[low + 1] - log_sigma[low])
    return low.to(torch.float64) + w
