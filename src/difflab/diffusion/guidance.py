"""Classifier-free guidance: one conditional network, steered at sampling time.

# --- Classifier-free guidance, Ho & Salimans 2022, eq. 6 ---
The paper writes eps~ = (1 + w_HS) eps(x_t, c) - w_HS eps(x_t, null). Here the scale is
w = 1 + w_HS, read as an interpolation from the unconditional prediction:

    eps~ = eps_u + w (eps_c - eps_u)

so w = 0 is the unconditional model, w = 1 the conditional one (both exactly, one network
evaluation each), and w > 1 pushes away from the unconditional prediction (two evaluations,
computed in one batched forward over the conditional and null halves).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

LabelledPredictor = Callable[[Tensor, Tensor, Tensor], Tensor]


def evaluations_per_step(scale: float) -> int:
    """Network evaluations per image per model call: 1 at w = 0 or 1, else 2."""
    return 1 if scale in (0.0, 1.0) else 2


def classifier_free_guidance(
    predict_eps: LabelledPredictor, *, null_class: int, scale: float
) -> LabelledPredictor:
    """predict(x_t, t, y) -> eps~ for labels y (B,), from a network that also knows the null class."""
    if not scale >= 0:
        raise ValueError(f"guidance scale must be >= 0 (--sample.guidance), got {scale}")

    def guided(x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        null = torch.full_like(y, null_class)
        if scale == 1.0:
            return predict_eps(x_t, t, y)
        if scale == 0.0:
            return predict_eps(x_t, t, null)
        # one batched forward: conditional half first, null half second (B -> 2B)
        both = predict_eps(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))
        eps_c, eps_u = both.chunk(2)
        return eps_u + scale * (eps_c - eps_u)

    return guided


def drop_labels(y: Tensor, *, null_class: int, p: float, generator=None) -> Tensor:
    """Labels with each replaced by the null class with probability p (training, Ho & Salimans
    2022 Algorithm 1: "c <- null with probability p_uncond")."""
    if p <= 0:
        return y
    dropped = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(dropped, torch.full_like(y, null_class), y)
