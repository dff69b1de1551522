"""The forward (noising) process q(x_t | x0)."""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.diffusion.parameterisation import expand_like
from difflab.diffusion.schedules import Schedule


def gather_alpha_bar(alpha_bar: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """alpha_bar[t] as (B, 1, ..., 1) in like's dtype/device; indexed in float64 where possible."""
    table = alpha_bar.detach().to(device=t.device)
    if t.device.type != "mps":  # MPS has no float64; elsewhere index the exact table
        table = table.to(torch.float64)
    return expand_like(table[t], like)


# --- Forward process, Ho et al. 2020, eq. 4 and Algorithm 1 (lines 2-4) ---
def noisify(
    x0: Tensor, schedule: Schedule | Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw t ~ U{0..T-1} per sample and eps ~ N(0, I); return (x_t, t, eps).

    `schedule` is a Schedule or its alpha_bar table (T,): the objective passes the table,
    already moved to the batch's device, so it is not copied at every step.

    x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps. t is int64 (B,). With
    generator=None the global torch RNG is used, so a seeded run (and a resumed run that
    restores the RNG state) draws the same t and eps.
    """
    if x0.ndim < 1 or x0.shape[0] == 0:
        raise ValueError(f"x0 must be a non-empty batch (B, ...), got shape {tuple(x0.shape)}")
    alpha_bar = schedule.alpha_bar if isinstance(schedule, Schedule) else schedule
    if not isinstance(alpha_bar, Tensor) or alpha_bar.ndim != 1:
        raise TypeError(f"schedule must be a Schedule or a 1-D alpha_bar tensor, got {schedule!r}")
    n_steps = alpha_bar.shape[0]
    t = torch.randint(0, n_steps, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    ab = gather_alpha_bar(alpha_bar, t, x0)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return x_t, t, eps
