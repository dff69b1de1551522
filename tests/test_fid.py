"""Fréchet distance against scipy.linalg.sqrtm and the closed form for two Gaussians."""

from __future__ import annotations

import numpy as np
import pytest

from difflab.metrics.fid import FrechetReference, frechet_distance

scipy_linalg = pytest.importorskip("scipy.linalg", reason="scipy is the reference implementation")


def _random_stats(rng: np.random.Generator, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    features = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3 + rng.normal(size=d)
    return features.mean(0), np.cov(features, rowvar=False)


def _scipy_fid(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's formula: Tr(sqrtm(S1 S2)) by a Schur-based general matrix square root."""
    covmean = scipy_linalg.sqrtm(sigma1 @ sigma2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize("d,n", [(8, 500), (64, 2000)])
def test_matches_scipy_sqrtm(d: int, n: int) -> None:
    rng = np.random.default_rng(d)
    mu1, s1 = _random_stats(rng, d, n)
    mu2, s2 = _random_stats(rng, d, n)
    expected = _scipy_fid(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, s1, mu2, s2, method="newton_schulz") == pytest.approx(
        expected, rel=1e-6
    )


def test_closed_form_diagonal_gaussians() -> None:
    # Diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum (sqrt s1 - sqrt s2)^2.
    rng = np.random.default_rng(1)
    s1, s2 = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(
        expected, rel=1e-12
    )


def test_closed_form_rotated_scaled_gaussian() -> None:
    # S2 = c^2 S1 (any S1): Tr((S1 S2)^(1/2)) = c Tr(S1), so d^2 = |dmu|^2 + (1 - c)^2 Tr(S1).
    rng = np.random.default_rng(2)
    a = rng.normal(size=(12, 12))
    s1, c = a @ a.T, 1.7
    expected = 4.0 + (1 - c) ** 2 * np.trace(s1)
    mu2 = np.zeros(12)
    mu2[3] = 2.0
    assert frechet_distance(np.zeros(12), s1, mu2, c**2 * s1) == pytest.approx(expected, rel=1e-10)


def test_identical_distributions_give_zero_and_symmetry() -> None:
    rng = np.random.default_rng(3)
    mu1, s1 = _random_stats(rng, 32, 400)
    mu2, s2 = _random_stats(rng, 32, 400)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1))


def test_singular_covariances_n_below_d_stay_finite_and_exact() -> None:
    # n <= d: both covariances have rank n-1. Newton-Schulz breaks down (NaN); eigh stays exact.
    rng = np.random.default_rng(4)
    d, n = 64, 40
    mu1, s1 = _random_stats(rng, d, n)
    mu2, s2 = _random_stats(rng, d, n)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(ours)
    # Independent check: Tr((S1 S2)^(1/2)) = sum of singular values of S1^(1/2) S2^(1/2).
    w1, v1 = np.linalg.eigh(s1)
    w2, v2 = np.linalg.eigh(s2)
    r1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    r2 = (v2 * np.sqrt(np.clip(w2, 0, None))) @ v2.T
    nuclear = np.linalg.svd(r1 @ r2, compute_uv=False).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * nuclear
    # numpy's eigh leaves round-off in the null space too; the reference itself is good to ~1e-7
    assert ours == pytest.approx(expected, rel=1e-7)
    assert not np.isfinite(frechet_distance(mu1, s1, mu2, s2, method="newton_schulz"))


@pytest.mark.parametrize("d,n", [(256, 100), (512, 60), (32, 400)])
def test_known_answers_at_n_below_and_above_d(d: int, n: int) -> None:
    """FID(X, X) = 0, and X2 = c X1 + b gives |b + (c - 1) mu1|^2 + (1 - c)^2 Tr(S1) exactly
    (S2 = c^2 S1, so Tr((S1 S2)^(1/2)) = c Tr(S1)), whether the covariances are singular
    (n <= d: round-off eigenvalues in the null space must not be summed) or not."""
    from difflab.metrics.features import feature_statistics

    rng = np.random.default_rng(d + n)
    x1 = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.1
    mu1, s1 = feature_statistics(x1)
    scale = np.trace(s1)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-12 * scale  # was -2.5e-5 * ... at 256/100
    c, b = 2.0, 3.0
    mu2, s2 = feature_statistics(c * x1 + b)
    exact = np.sum((mu1 - mu2) ** 2) + (1 - c) ** 2 * scale
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(exact, rel=1e-12)
    assert FrechetReference(mu1, s1).distance(mu2, s2) == pytest.approx(exact, rel=1e-12)


def test_reference_object_matches_function() -> None:
    rng = np.random.default_rng(5)
    mu1, s1 = _random_stats(rng, 16, 300)
    mu2, s2 = _random_stats(rng, 16, 300)
    ref = FrechetReference(mu1, s1)
    assert ref.distance(mu2, s2) == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-12)


def test_bad_shapes_and_method_raise() -> None:
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), method="sqrtm")


def test_singular_reference_uses_eigh_fallback_and_matches_closed_form() -> None:
    # Zero variances make Cholesky fail outright; the eigh square root takes over.
    s1 = np.array([0.0, 2.0, 0.5, 0.0, 1.0])
    s2 = np.array([1.0, 0.0, 0.5, 0.0, 4.0])
    expected = np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(np.zeros(5), np.diag(s1), np.zeros(5), np.diag(s2)) == pytest.approx(
        expected, rel=1e-12
    )
    ref = FrechetReference(np.zeros(5), np.diag(s1))
    assert ref.distance(np.zeros(5), np.diag(s2)) == pytest.approx(expected, rel=1e-12)
