"""Schedules: end points, monotonicity, the cosine paper formula, alpha_bar <-> sigma maps."""

from __future__ import annotations

import math

import pytest
import torch

from difflab.diffusion import (
    Schedule,
    alpha_bar_at,
    alpha_bar_from_sigma,
    continuous_cosine_alpha_bar,
    continuous_cosine_t,
    cosine_schedule,
    linear_schedule,
    schedule_from_config,
    sigma_at,
    sigma_from_alpha_bar,
    timestep_at_sigma,
)


@pytest.mark.parametrize("beta_max", [0.02, 0.01])
def test_linear_schedule_end_points_and_monotonicity(beta_max):
    s = linear_schedule(1000, 1e-4, beta_max)
    assert s.n_steps == 1000 and s.beta.dtype == torch.float64
    assert s.beta[0].item() == pytest.approx(1e-4) and s.beta[-1].item() == pytest.approx(beta_max)
    torch.testing.assert_close(s.alpha, 1 - s.beta)
    assert s.alpha_bar[0].item() == pytest.approx(1 - 1e-4)
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())
    # closed form of the end point: prod(1 - beta_i) with evenly spaced betas
    expected_last = math.prod(1 - (1e-4 + i * (beta_max - 1e-4) / 999) for i in range(1000))
    assert s.alpha_bar[-1].item() == pytest.approx(expected_last, rel=1e-10)


def test_cosine_schedule_follows_nichol_dhariwal_eq_17():
    n, s_off = 1000, 0.008
    sched = cosine_schedule(n)

    def f(t: float) -> float:
        return math.cos((t / n + s_off) / (1 + s_off) * math.pi / 2) ** 2

    # step i is the paper's t = i + 1; below the clipping region alpha_bar = f(t) / f(0)
    for i in (0, 1, 100, 500, 900, 990):
        assert sched.alpha_bar[i].item() == pytest.approx(f(i + 1) / f(0), rel=1e-9)
    assert sched.beta.max().item() == pytest.approx(0.999)  # the last beta is clipped
    assert bool((sched.beta <= 0.999).all()) and bool(
        (sched.alpha_bar[1:] < sched.alpha_bar[:-1]).all()
    )


def test_continuous_cosine_and_its_inverse():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    ab = continuous_cosine_alpha_bar(t)
    assert ab[0].item() == 1.0 and ab[-1].item() == pytest.approx(0.0, abs=1e-15)
    torch.testing.assert_close(continuous_cosine_t(ab[1:-1]), t[1:-1])


def test_sigma_alpha_bar_round_trip():
    ab = torch.tensor([0.999, 0.5, 1e-4], dtype=torch.float64)
    sigma = sigma_from_alpha_bar(ab)
    torch.testing.assert_close(sigma, torch.sqrt((1 - ab) / ab))
    torch.testing.assert_close(alpha_bar_from_sigma(sigma), ab)


def test_fractional_timesteps_interpolate_log_sigma_and_invert():
    ab = linear_schedule().alpha_bar
    ints = torch.tensor([0, 1, 500, 999])
    torch.testing.assert_close(alpha_bar_at(ab, ints), ab[ints])
    torch.testing.assert_close(alpha_bar_at(ab, ints.double()), ab[ints])
    mid = alpha_bar_at(ab, torch.tensor([500.5], dtype=torch.float64))
    log_sigma = sigma_from_alpha_bar(ab).log()
    expected = alpha_bar_from_sigma(torch.exp((log_sigma[500] + log_sigma[501]) / 2))
    torch.testing.assert_close(mid, expected.reshape(1))
    t = torch.tensor([0.0, 0.25, 17.5, 998.9, 999.0], dtype=torch.float64)
    torch.testing.assert_close(timestep_at_sigma(ab, sigma_at(ab, t)), t)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        alpha_bar_at(ab, torch.tensor([1000.5]))


def test_schedule_from_config_and_bad_input():
    assert schedule_from_config("cosine", 50).n_steps == 50
    lin = schedule_from_config("linear", 100, 1e-4, 0.01)
    assert lin.beta[-1].item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="--diffusion.schedule"):
        schedule_from_config("sigmoid", 100)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        linear_schedule(100, 0.02, 0.01)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        Schedule.from_beta(torch.tensor([0.1, 1.5]))
