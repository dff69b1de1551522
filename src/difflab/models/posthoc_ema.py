"""Power-function EMA and its post-hoc reconstruction: pure functions on numbers and tensors.

# --- Post-hoc EMA: Karras, Aittala, Lehtinen, Hellsten, Aila & Laine 2024, "Analyzing and
# --- Improving the Training Dynamics of Diffusion Models" (EDM2), Sec. 3 and Appendix C ---
# Notation (the paper's): t is the training time in optimiser steps, theta(tau) the weights at
# time tau, theta_hat_gamma(t) their power-function average with exponent gamma, sigma_rel the
# width of its averaging profile relative to t.
#
#   profile      p_{t,gamma}(tau) = (gamma + 1) tau^gamma / t^(gamma + 1),   0 <= tau <= t
#   average      theta_hat(t) = integral_0^t p_{t,gamma}(tau) theta(tau) dtau
#   width        sigma_rel = sqrt(gamma + 1) / ((gamma + 2) sqrt(gamma + 3))       (App. C, eq. 123)
#   inverse      gamma = the largest real root of
#                gamma^3 + 7 gamma^2 + (16 - sigma_rel^-2) gamma + 12 - sigma_rel^-2
#                                                                    (eq. 126, Algorithm 2)
#   per step     theta_hat_t = beta_t theta_hat_{t-1} + (1 - beta_t) theta_t,
#                beta_t = (1 - 1/t)^(gamma + 1)                                     (eq. 127)
#
# Discrete = continuous: with beta_1 = 0, the step recursion gives theta_k (k = 1..t) the weight
# (k^(gamma+1) - (k-1)^(gamma+1)) / t^(gamma+1) = integral_{k-1}^{k} p_{t,gamma}, i.e. it is the
# continuous average of the piecewise-constant trajectory theta(tau) = theta_k on (k-1, k].
# The initial weights theta_0 get weight 0.
#
# Reconstruction (App. C.3, eq. 151 and Algorithm 3): snapshots theta_hat_i = theta_hat at
# (t_i, gamma_i) are linear in theta, so a target profile p_r is matched by the combination
# sum_i x_i theta_hat_i whose profile sum_i x_i p_i is closest to p_r in L2:
#   A x = b,   A_ij = <p_i, p_j>,   b_i = <p_i, p_r>,   <f, g> = integral_0^inf f(tau) g(tau) dtau
# and, for t_a <= t_b (closed form of the integral of two power functions):
#   <p_a, p_b> = (gamma_a + 1)(gamma_b + 1) (t_a / t_b)^gamma_b / ((gamma_a + gamma_b + 1) t_b).
# Like the paper's code we rescale x to sum to 1, so a constant trajectory is reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

# sigma_rel(gamma=0), the flat profile: wider profiles would need gamma < 0 (early weights
# counting more than late ones), which a training average never wants.
SIGMA_REL_MAX = 1.0 / np.sqrt(12.0)


def gamma_to_sigma_rel(gamma: float) -> float:
    """The relative width sigma_rel of the profile t^gamma (EDM2 eq. 123)."""
    g = float(gamma)
    return float(np.sqrt(g + 1.0) / ((g + 2.0) * np.sqrt(g + 3.0)))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The exponent gamma whose profile has relative width `sigma_rel` (EDM2 eq. 126, Alg. 2)."""
    s = float(sigma_rel)
    if not 0.0 < s < SIGMA_REL_MAX:
        raise ValueError(
            f"sigma_rel must be in (0, {SIGMA_REL_MAX:.4f}) (the width of a power-function "
            f"EMA relative to the training length), got {sigma_rel!r}"
        )
    inv = s**-2
    roots = np.roots([1.0, 7.0, 16.0 - inv, 12.0 - inv])
    return float(roots.real.max())


def power_ema_beta(step: int, gamma: float) -> float:
    """beta_t = (1 - 1/t)^(gamma + 1) for optimiser step t = 1, 2, ... (EDM2 eq. 127)."""
    if step < 1:
        raise ValueError(f"power-function EMA steps count from 1, got {step}")
    return (1.0 - 1.0 / step) ** (gamma + 1.0)


@torch.no_grad()
def power_ema_update(averages: Sequence[torch.Tensor], params: Sequence[torch.Tensor],
                     step: int, gamma: float) -> None:  # fmt: skip
    """In place: theta_hat <- beta_t theta_hat + (1 - beta_t) theta (step 1 copies theta)."""
    if len(averages) != len(params):
        raise ValueError("averages and params have different lengths")
    weight = 1.0 - power_ema_beta(step, gamma)
    # lerp(a, p, w) = a + w (p - a) = beta a + (1 - beta) p
    torch._foreach_lerp_(list(averages), [p.to(a.dtype) for a, p in zip(averages, params)],
                         weight)  # fmt: skip


# --- EDM2 Appendix C.3: inner products of power-function profiles (eq. 151) ---


def profile_inner_products(t_a, gamma_a, t_b, gamma_b) -> np.ndarray:
    """<p_{t_a,gamma_a}, p_{t_b,gamma_b}> for every pair (a, b): a matrix (len(a), len(b))."""
    t_a, g_a = (np.asarray(v, dtype=np.float64).reshape(-1, 1) for v in (t_a, gamma_a))
    t_b, g_b = (np.asarray(v, dtype=np.float64).reshape(1, -1) for v in (t_b, gamma_b))
    if (t_a <= 0).any() or (t_b <= 0).any():
        raise ValueError("profile times must be > 0 (steps count from 1)")
    t_lo, t_hi = np.minimum(t_a, t_b), np.maximum(t_a, t_b)
    g_hi = np.where(t_a <= t_b, g_b, g_a)  # the exponent of the profile that ends later
    # 1. integral_0^t_lo (g_a+1)(g_b+1) tau^(g_a+g_b) dtau / (t_a^(g_a+1) t_b^(g_b+1)),
    # 2. written with the ratio t_lo/t_hi <= 1 so that no power overflows
    return (g_a + 1) * (g_b + 1) * (t_lo / t_hi) ** g_hi / ((g_a + g_b + 1) * t_hi)


def solve_posthoc_weights(t_in, gamma_in, t_out: float, gamma_out: float) -> np.ndarray:
    """Weights x (summing to 1) of the snapshots (t_in, gamma_in) whose combination best
    matches the profile (t_out, gamma_out) in L2 (EDM2 Algorithm 3)."""
    a = profile_inner_products(t_in, gamma_in, t_in, gamma_in)
    b = profile_inner_products(t_in, gamma_in, [t_out], [gamma_out])[:, 0]
    x = np.linalg.solve(a, b)
    return x / x.sum()


def profile_residual(t_in, gamma_in, weights, t_out: float, gamma_out: float) -> float:
    """|| p_out - sum_i x_i p_i ||_2 in closed form: how far the reconstruction's profile is
    from the target's. For any trajectory, |error| <= residual * ||theta||_2 (Cauchy-Schwarz)."""
    x = np.asarray(weights, dtype=np.float64)
    a = profile_inner_products(t_in, gamma_in, t_in, gamma_in)
    b = profile_inner_products(t_in, gamma_in, [t_out], [gamma_out])[:, 0]
    target = profile_inner_products([t_out], [gamma_out], [t_out], [gamma_out])[0, 0]
    return float(np.sqrt(max(target - 2 * x @ b + x @ a @ x, 0.0)))


def combine_states(
    weighted: Iterable[tuple[float, Mapping[str, torch.Tensor]]], averaged: set[str]
) -> dict[str, torch.Tensor]:
    """sum_i x_i state_i over (x_i, state_i) pairs, read one at a time (snapshots need not all
    fit in memory), for the `averaged` keys in float64, returned in the stored dtype; every
    other key (buffers, integer tensors) is taken from the last state."""
    totals: dict[str, torch.Tensor] = {}
    last: Mapping[str, torch.Tensor] | None = None
    for x, state in weighted:
        if last is not None and state.keys() != last.keys():
            raise ValueError("the states to combine hold different tensors")
        for key in averaged & state.keys():
            term = float(x) * state[key].double()
            totals[key] = totals[key] + term if key in totals else term
        last = state
    if last is None:
        raise ValueError("no states to combine")
    return {k: totals[k].to(v.dtype) if k in totals else v.clone() for k, v in last.items()}
