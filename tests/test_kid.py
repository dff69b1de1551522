"""KID against a direct O(n^2) double loop, and its unbiasedness on same-distribution sets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from difflab.metrics.kid import kernel_inception_distance, mmd2_unbiased


def _direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Gretton et al. 2012 eq. 3 written as explicit sums over pairs."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_direct_double_loop() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(25, 7)), rng.normal(0.3, 1.2, size=(25, 7))
    import torch

    assert mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        _direct_mmd2(x, y), rel=1e-10
    )


def test_kid_single_full_subset_equals_direct() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 5)), rng.normal(0.5, 1.0, size=(20, 5))
    result = kernel_inception_distance(x, y, subset_size=20, n_subsets=1)
    assert result.mean == pytest.approx(_direct_mmd2(x, y), rel=1e-10)
    assert result.std == 0.0 and result.subset_size == 20


def test_kid_same_distribution_is_near_zero_and_shift_is_positive() -> None:
    rng = np.random.default_rng(2)
    d = 32
    a, b = rng.normal(size=(2000, d)), rng.normal(size=(2000, d))
    same = kernel_inception_distance(a, b, subset_size=500, n_subsets=50)
    shifted = kernel_inception_distance(a, b + 0.25, subset_size=500, n_subsets=50)
    # Unbiased: the mean over subsets is ~0 (within its standard error), never clearly negative.
    assert abs(same.mean) < 3 * same.std / np.sqrt(50) + 1e-4
    assert shifted.mean > 10 * max(abs(same.mean), same.std)


def test_kid_is_reproducible_by_seed_and_validates_shapes() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(100, 4)), rng.normal(size=(80, 4))
    r1 = kernel_inception_distance(x, y, subset_size=50, n_subsets=5, seed=7)
    r2 = kernel_inception_distance(x, y, subset_size=50, n_subsets=5, seed=7)
    assert r1 == r2
    with pytest.raises(ValueError, match="equal D"):
        kernel_inception_distance(x, rng.normal(size=(10, 3)))
