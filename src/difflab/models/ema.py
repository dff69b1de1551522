"""Exponential moving average (EMA) of a model's weights.

# --- EMA of weights: Polyak & Juditsky 1992; warm-up from TensorFlow's
# --- ExponentialMovingAverage(num_updates), also the default of diffusers' EMAModel ---
#   theta_ema <- decay_t * theta_ema + (1 - decay_t) * theta
#   decay_t    = min(decay, (1 + t) / (warmup + t))
# Early in training the EMA would otherwise be dominated by the random initial weights for
# ~1 / (1 - decay) steps; the warm-up lets it follow the model closely at first.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(step: int, decay: float, *, warmup: float = 10.0) -> float:
    """The decay used at optimiser step `step` (0-based): min(decay, (1+step)/(warmup+step)).

    `warmup=0` turns the warm-up off (the constant `decay` from the first step).
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    if warmup < 0:
        raise ValueError(f"EMA warmup must be >= 0, got {warmup}")
    if warmup == 0:
        return decay
    return min(decay, (1.0 + step) / (warmup + step))


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """In place: ema_param <- decay * ema_param + (1 - decay) * param; buffers are copied.

    Buffers (e.g. BatchNorm running statistics) are already averages, so they are copied.
    """
    ema_params = [p for p in ema_model.parameters()]
    params = [p.detach() for p in model.parameters()]
    if len(ema_params) != len(params):
        raise ValueError("ema_model and model have different parameter lists")
    floating = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
    if floating:
        e_list, p_list = zip(*floating)
        # lerp(e, p, w) = e + w * (p - e) = decay * e + (1 - decay) * p  with w = 1 - decay
        torch._foreach_lerp_(list(e_list), [p.to(e.dtype) for e, p in floating], 1.0 - decay)
    for e_buf, buf in zip(ema_model.buffers(), model.buffers()):
        e_buf.copy_(buf)
