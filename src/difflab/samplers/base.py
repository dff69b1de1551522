"""What every sampler shares: the signature, StepInfo, timestep checks and noise drawing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from difflab.diffusion.interpolation import alpha_bar_at

NoisePredictor = Callable[[Tensor, Tensor], Tensor]
Generators = torch.Generator | Sequence[torch.Generator] | None
Timesteps = Tensor | Sequence[int] | Sequence[float]


@dataclass(frozen=True)
class StepInfo:
    """What on_step sees once per sampler step (tensors are not copied: do not modify them).

    i: step index (0-based); t: the step's timestep (int, or float for fractional t);
    x_t: the state at t in variance-preserving space, (B, C, H, W);
    x0_hat: the model's prediction of x0 at t (after clipping, if any).
    """

    i: int
    t: int | float
    x_t: Tensor
    x0_hat: Tensor


StepCallback = Callable[[StepInfo], None]


class Sampler(Protocol):
    """sample_xxx(predict_noise, x_T, alpha_bar, timesteps, *, generator, on_step, clip_x0, ...)."""

    def __call__(
        self,
        predict_noise: NoisePredictor,
        x_T: Tensor,
        alpha_bar: Tensor,
        timesteps: Timesteps,
        *,
        generator: Generators = None,
        on_step: StepCallback | None = None,
        clip_x0: tuple[float, float] | None = None,
    ) -> Tensor: ...


@dataclass(frozen=True)
class Plan:
    """A validated step plan: timesteps t_i and alpha_bar at t_i and at the next step (1 at the end)."""

    t: list[int | float]
    alpha_bar: list[float]
    alpha_bar_next: list[float]
    fractional: bool


def plan_steps(alpha_bar: Tensor, timesteps: Timesteps) -> Plan:
    """Check that timesteps strictly decrease inside [0, T-1] and look up alpha_bar for each."""
    ts = torch.as_tensor(timesteps).detach().cpu()
    if ts.ndim != 1 or ts.numel() == 0:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {tuple(ts.shape)}")
    if ts.numel() > 1 and not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(
            "timesteps must be strictly decreasing (noisiest first), e.g. 999, 959, ..."
        )
    fractional = ts.is_floating_point()
    ab = alpha_bar_at(alpha_bar, ts).tolist()  # raises ValueError when out of range
    return Plan(t=ts.tolist(), alpha_bar=ab, alpha_bar_next=[*ab[1:], 1.0], fractional=fractional)


def work_dtype(x: Tensor) -> torch.dtype:
    """Sampler arithmetic runs in float64 if given float64, else float32 (never bf16/fp16)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def call_model(
    predict_noise: NoisePredictor, x_t: Tensor, t: int | float, fractional: bool
) -> Tensor:
    """predict_noise on the batch at timestep t: t as int64 (B,), or float32 (B,) when fractional."""
    dtype = torch.float32 if fractional else torch.int64
    t_batch = torch.full((x_t.shape[0],), t, dtype=dtype, device=x_t.device)
    return predict_noise(x_t, t_batch).to(x_t.dtype)


def draw_noise(like: Tensor, generator: Generators) -> Tensor:
    """N(0, I) shaped like `like`; a list of generators draws image k from generator k.

    Matches diffusers' randn_tensor: one generator draws the whole batch at once, a list
    draws (1, ...) per image and concatenates, so image k does not depend on the batch size.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    if len(generator) != like.shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {like.shape[0]} images")
    shape = (1, *like.shape[1:])
    parts = [
        torch.randn(shape, generator=g, device=like.device, dtype=like.dtype) for g in generator
    ]
    return torch.cat(parts)


def clip(x0_hat: Tensor, clip_x0: tuple[float, float] | None) -> Tensor:
    """Clamp the x0 prediction to (low, high) only when asked (never to +-1 by default)."""
    if clip_x0 is None:
        return x0_hat
    low, high = clip_x0
    if not low < high:
        raise ValueError(f"clip_x0 must be (low, high) with low < high, got {clip_x0}")
    return x0_hat.clamp(low, high)
