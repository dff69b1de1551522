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
    predict_eps: LabelledPredictor,
    *,
    null_class: int,
    scale: float,
    t_interval: tuple[float, float] | None = None,
) -> LabelledPredictor:
    """predict(x_t, t, y) -> eps~ for labels y (B,), from a network that also knows the null class.

    t_interval (t_min, t_max): guide only there (Kynkaanniemi et al. 2024, below); elsewhere the
    conditional prediction alone (w = 1), one network evaluation."""
    if not scale >= 0:
        raise ValueError(f"guidance scale must be >= 0 (--sample.guidance), got {scale}")
    if t_interval is not None and not t_interval[0] <= t_interval[1]:
        raise ValueError(f"guidance interval needs t_min <= t_max, got {t_interval}")

    def guided(x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        null = torch.full_like(y, null_class)
        inside = t_interval is None or bool(in_interval(t, t_interval).all())
        if scale == 1.0 or not inside:
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


# --- Autoguidance, Karras et al. 2024 ("Guiding a Diffusion Model with a Bad Version of
# Itself", NeurIPS; arXiv 2406.02507), Sec. 3 ---
# The same interpolation as classifier-free guidance, D_w = D_0 + w (D_1 - D_0), but D_0 is a
# weaker version of the main model D_1 (here: an earlier snapshot of the same run) given the
# same input, so it works for unconditional models too. At one (x_t, t) the eps and the
# x0 (denoiser) predictions are affine in each other with the same coefficients, so the
# interpolation gives the same step whether it is taken in eps, x0 or v:
#     eps~ = eps_0 + w (eps_1 - eps_0)
# Guidance limited to an interval of noise levels (Kynkaanniemi et al. 2024, "Applying
# Guidance in a Limited Interval", arXiv 2404.07724; they limit classifier-free guidance, and
# the same holds for autoguidance): outside t_min <= t <= t_max only D_1 is called, one network
# evaluation instead of two.


def autoguidance(
    predict_main: Callable[..., Tensor],
    predict_guide: Callable[..., Tensor],
    *,
    scale: float,
    t_interval: tuple[float, float] | None = None,
) -> Callable[..., Tensor]:
    """predict(x_t, t, *y) -> eps~ guided by a weaker model; both predictors return eps.

    scale w: 1 is the main model alone, 0 the guide alone, w > 1 moves away from the guide.
    t_interval (t_min, t_max): guide only where every t of the batch lies inside it (the
    samplers call the model with one t per batch)."""
    if not scale >= 0:
        raise ValueError(f"autoguidance scale must be >= 0 (--autoguidance), got {scale}")
    if t_interval is not None and not t_interval[0] <= t_interval[1]:
        raise ValueError(f"guidance interval needs t_min <= t_max, got {t_interval}")

    def guided(x_t: Tensor, t: Tensor, *y: Tensor) -> Tensor:
        inside = t_interval is None or bool(in_interval(t, t_interval).all())
        if scale == 1.0 or not inside:
            return predict_main(x_t, t, *y)
        if scale == 0.0:
            return predict_guide(x_t, t, *y)
        eps_0 = predict_guide(x_t, t, *y)
        return eps_0 + scale * (predict_main(x_t, t, *y) - eps_0)

    return guided


def guided_steps(timesteps: Tensor, t_interval: tuple[float, float] | None) -> int:
    """How many of a plan's model calls guidance doubles: those with t inside the interval."""
    t = torch.as_tensor(timesteps, dtype=torch.float64)
    if t_interval is None:
        return int(t.numel())
    return int(in_interval(t, t_interval).sum())


def in_interval(t: Tensor, t_interval: tuple[float, float]) -> Tensor:
    """t_min <= t <= t_max, elementwise: the one test of where guidance (either kind) applies."""
    return (t >= t_interval[0]) & (t <= t_interval[1])
