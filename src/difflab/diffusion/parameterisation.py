"""What a network can predict (eps, x0 or v) and exact conversions between the three.

Forward process (Ho et al. 2020, eq. 4): x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * eps.
v-prediction (Salimans & Ho 2022, Sec. 4 and Appendix D): v = sqrt(alpha_bar) * eps
- sqrt(1 - alpha_bar) * x0. `alpha_bar` below is a Python float or any tensor that broadcasts against x_t
(for a batch use `expand_like(alpha_bar_t, x_t)`).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

Scalar = Tensor | float

Objective = Literal["eps", "x0", "v"]
OBJECTIVES: tuple[str, ...] = ("eps", "x0", "v")


def expand_like(values: Tensor, x: Tensor) -> Tensor:
    """(B,) per-sample values -> (B, 1, ..., 1) in x's dtype and device, ready to broadcast."""
    return values.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def snr(alpha_bar: Scalar) -> Tensor:
    """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) (Kingma et al. 2021, VDM: alpha^2 / sigma^2, VP form)."""
    return alpha_bar / (1 - alpha_bar)


# --- DDPM, Ho et al. 2020, eq. 15 (x0 from eps) and its inverse ---
def x0_from_eps(x_t: Tensor, eps: Tensor, alpha_bar: Scalar) -> Tensor:
    """x0 = (x_t - sqrt(1 - alpha_bar) * eps) / sqrt(alpha_bar)."""
    return (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def eps_from_x0(x_t: Tensor, x0: Tensor, alpha_bar: Scalar) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar) * x0) / sqrt(1 - alpha_bar)."""
    return (x_t - alpha_bar**0.5 * x0) / (1 - alpha_bar) ** 0.5


# --- v-parameterisation, Salimans & Ho 2022, Sec. 4 and Appendix D ---
def v_from_x0_eps(x0: Tensor, eps: Tensor, alpha_bar: Scalar) -> Tensor:
    """v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * x0."""
    return alpha_bar**0.5 * eps - (1 - alpha_bar) ** 0.5 * x0


def x0_from_v(x_t: Tensor, v: Tensor, alpha_bar: Scalar) -> Tensor:
    """x0 = sqrt(alpha_bar) * x_t - sqrt(1 - alpha_bar) * v."""
    return alpha_bar**0.5 * x_t - (1 - alpha_bar) ** 0.5 * v


def eps_from_v(x_t: Tensor, v: Tensor, alpha_bar: Scalar) -> Tensor:
    """eps = sqrt(1 - alpha_bar) * x_t + sqrt(alpha_bar) * v."""
    return (1 - alpha_bar) ** 0.5 * x_t + alpha_bar**0.5 * v


def target_for(objective: Objective, x0: Tensor, eps: Tensor, alpha_bar: Scalar) -> Tensor:
    """The regression target of `objective` for a noised batch."""
    if objective == "eps":
        return eps
    if objective == "x0":
        return x0
    if objective == "v":
        return v_from_x0_eps(x0, eps, alpha_bar)
    raise ValueError(f"unknown objective {objective!r}: choose one of {OBJECTIVES}")


def eps_from_prediction(
    objective: Objective, x_t: Tensor, prediction: Tensor, alpha_bar: Scalar
) -> Tensor:
    """Convert a network output of kind `objective` to the noise prediction eps."""
    if objective == "eps":
        return prediction
    if objective == "x0":
        return eps_from_x0(x_t, prediction, alpha_bar)
    if objective == "v":
        return eps_from_v(x_t, prediction, alpha_bar)
    raise ValueError(f"unknown objective {objective!r}: choose one of {OBJECTIVES}")
