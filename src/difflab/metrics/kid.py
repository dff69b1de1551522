"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", sec. 3).

# --- unbiased MMD^2, Gretton et al. 2012, eq. 3; kernel k(x, y) = (x.y / d + 1)^3 ---
    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
              - 2/(mn) sum_{i,j} k(x_i, y_j)

KID is the mean of MMD^2_u over random subsets (drawn without replacement within a subset),
reported with its standard deviation over subsets. Unbiased: its expectation is exactly 0
when both sets come from the same distribution, so small negative values are normal noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class KIDResult:
    mean: float
    std: float
    subset_size: int
    n_subsets: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "kid_mean": self.mean,
            "kid_std": self.std,
            "kid_subset_size": self.subset_size,
            "kid_subsets": self.n_subsets,
        }


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x.y / d + 1)^3 for all pairs: (m, d), (n, d) -> (m, n)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with the cubic polynomial kernel."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"MMD^2 needs at least 2 samples per set, got {m} and {n}")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()  # i != j
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2 * k_xy.sum() / (m * n))


def kernel_inception_distance(
    features1: np.ndarray | Tensor,
    features2: np.ndarray | Tensor,
    *,
    subset_size: int = 1000,
    n_subsets: int = 100,
    seed: int = 0,
) -> KIDResult:
    """KID between two feature sets (N, D): mean and std of MMD^2_u over random subsets.

    `subset_size` is capped at the smaller set's size (the reference implementation uses 1000).
    """
    f1 = torch.as_tensor(np.asarray(features1) if not isinstance(features1, Tensor) else features1)
    f2 = torch.as_tensor(np.asarray(features2) if not isinstance(features2, Tensor) else features2)
    f1, f2 = f1.to(torch.float64), f2.to(torch.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(
            f"features must be (N, D) with equal D, got {tuple(f1.shape)}, {tuple(f2.shape)}"
        )
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    size = min(subset_size, f1.shape[0], f2.shape[0])
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(n_subsets):
        i1 = torch.randperm(f1.shape[0], generator=generator)[:size]
        i2 = torch.randperm(f2.shape[0], generator=generator)[:size]
        values.append(mmd2_unbiased(f1[i1], f2[i2]))
    arr = np.asarray(values)
    return KIDResult(float(arr.mean()), float(arr.std()), size, n_subsets)
