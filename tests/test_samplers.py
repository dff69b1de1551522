"""Samplers against exact oracles, one parametrised test over the whole registry, plus seeding."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from difflab.config import SampleConfig
from difflab.config.sampling import SAMPLER_NAMES
from difflab.config.sampling import SKIP_SCHEDULES as CONFIG_SKIP_SCHEDULES
from difflab.diffusion import alpha_bar_at, linear_schedule, sigma_from_alpha_bar
from difflab.samplers import (
    SAMPLERS,
    SKIP_SCHEDULES,
    StepInfo,
    initial_noise,
    sample_in_batches,
    sampler_spec,
)
from difflab.samplers.karras import Churn, sample_euler, sample_heun
from difflab.samplers.timesteps import (
    karras_sigmas,
    karras_timesteps,
    skip_every_third,
    skip_growing,
)

T = 1000
ALPHA_BAR = linear_schedule(T).alpha_bar


def plan(name: str, steps: int, *, eta: float = 0.0, skip: str = "every_third"):
    """The registry's plan for `steps` (eta 0: deterministic DDIM, to compare with the ODE)."""
    sample = SampleConfig(sampler=name, steps=steps, eta=eta, skip=skip)
    return SAMPLERS[name].plan(ALPHA_BAR, sample)


def sampler(name: str, **options):
    """The registered function with its registry options for a 10-step budget (eta 0)."""
    return functools.partial(SAMPLERS[name].function, **{**plan(name, 10).options, **options})


def _alpha_bar_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # samplers give every image the same t: look it up once and broadcast (keeps the test fast)
    assert bool((t == t[0]).all())
    ab = alpha_bar_at(ALPHA_BAR, t[:1].cpu())
    return ab.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def point_predictor(c: float):
    """Data = the single point c: the ideal eps is (x_t - sqrt(ab) c) / sqrt(1 - ab)."""

    def predict_noise(x_t, t):
        ab = _alpha_bar_like(t, x_t)
        return (x_t - ab.sqrt() * c) / (1 - ab).sqrt()

    return predict_noise


def gaussian_predictor(s: float):
    """Data ~ N(0, s^2 I). x_t = sqrt(ab) x0 + sqrt(1-ab) eps is then N(0, ab s^2 + 1 - ab), and
    E[eps | x_t] = Cov(eps, x_t) / Var(x_t) * x_t = sqrt(1 - ab) / (ab s^2 + 1 - ab) * x_t."""

    def predict_noise(x_t, t):
        ab = _alpha_bar_like(t, x_t)
        return x_t * (1 - ab).sqrt() / (ab * s**2 + 1 - ab)

    return predict_noise


# Gaussian oracle at 1000 model evaluations: the discretisation error is then < 1 % for every
# sampler (first-order ones converge slowly: DDPM is ~ -7 % at 100 steps), and the sampling
# error of the std of 8000 values is ~ 0.8 %; the 4 % tolerance still catches any wrong
# coefficient (which moves the std by tens of percent).
@pytest.mark.parametrize("oracle", ["point", "gaussian"])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_meets_exact_oracles(name, oracle):
    run = sampler(name)
    gen = torch.Generator().manual_seed(0)
    if oracle == "point":
        # c = 3 lies outside [-1, 1]: landing on it also proves nothing clips by default
        ts = plan(name, 10).timesteps
        x_T = torch.randn(8, 1, 4, 4, generator=gen, dtype=torch.float64)
        x0 = run(point_predictor(3.0), x_T, ALPHA_BAR, ts, generator=gen)
        assert x0.dtype == torch.float64
        torch.testing.assert_close(x0, torch.full_like(x0, 3.0), atol=1e-9, rtol=0)
    else:
        s = 0.5
        ts = plan(name, T).timesteps
        x_T = torch.randn(8000, 1, generator=gen, dtype=torch.float64)
        x0 = run(gaussian_predictor(s), x_T, ALPHA_BAR, ts, generator=gen)
        assert abs(x0.mean().item()) < 0.02
        assert x0.std().item() == pytest.approx(s, rel=0.04)


DETERMINISTIC = ["ddim", "euler", "heun", "dpmpp_2m", "edm"]  # ddpm(_skip) add noise; edm: churn 0


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_follow_the_exact_ode_path_at_every_step(name):
    """Data = one point c: the probability-flow ODE's solution from x_T is, in closed form,
    x_t = sqrt(ab_t) c + sqrt(1 - ab_t) eps* with eps* = (x_T - sqrt(ab_T) c) / sqrt(1 - ab_T)
    (x_t / sqrt(ab_t) = c + sigma_t eps* is linear in sigma, so every first- and second-order
    step is exact on it). A sampler that only lands on c at its last step fails this."""
    c = 3.0
    ts = plan(name, 10).timesteps
    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    steps: list[StepInfo] = []
    sampler(name)(point_predictor(c), x_T, ALPHA_BAR, ts, on_step=steps.append)
    assert len(steps) >= 5

    def alpha_bar_of(info: StepInfo) -> torch.Tensor:
        return alpha_bar_at(ALPHA_BAR, torch.as_tensor(info.t).reshape(-1)[:1]).double()

    ab0 = alpha_bar_of(steps[0])
    eps_star = (steps[0].x_t.double() - ab0.sqrt() * c) / (1 - ab0).sqrt()
    for info in steps:
        ab = alpha_bar_of(info)
        expected = ab.sqrt() * c + (1 - ab).sqrt() * eps_star
        # 1e-6: fractional t (Karras) are float32, so alpha_bar(t) is known to ~6e-8 relative
        torch.testing.assert_close(info.x_t.double(), expected, atol=1e-6, rtol=0)
        # x0_hat divides by sqrt(ab), ~0.06 at the first step: rounding grows to ~5e-7 there
        torch.testing.assert_close(
            info.x0_hat.double(), torch.full_like(expected, c), atol=2e-6, rtol=0
        )


def test_on_step_reports_each_step_and_clip_only_when_asked():
    seen: list[StepInfo] = []
    ts = plan("ddim", 5).timesteps
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = sampler("ddim")(point_predictor(3.0), x_T, ALPHA_BAR, ts, on_step=seen.append)
    assert [s.i for s in seen] == list(range(5))
    assert [s.t for s in seen] == ts.tolist()
    assert seen[0].x_t is not None and torch.equal(seen[0].x_t, x_T)
    torch.testing.assert_close(seen[-1].x0_hat, torch.full_like(out, 3.0))
    clipped = sampler("ddim")(point_predictor(3.0), x_T, ALPHA_BAR, ts, clip_x0=(-1.0, 1.0))
    torch.testing.assert_close(clipped, torch.ones_like(clipped))


def test_bf16_model_output_does_not_lower_sampler_precision():
    predict = point_predictor(0.25)
    ts = plan("dpmpp_2m", 8).timesteps
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)).bfloat16()
    out = sampler("dpmpp_2m")(lambda x, t: predict(x, t).bfloat16(), x_T, ALPHA_BAR, ts)
    assert out.dtype == torch.float32


def test_euler_with_churn_still_lands_on_the_point():
    ts = plan("euler", 12).timesteps
    x_T = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    calls: list[torch.Tensor] = []

    def spy(x_t, t):
        calls.append(t)
        return point_predictor(-0.7)(x_t, t)

    churn = Churn(s_churn=40.0)
    x0 = sample_euler(spy, x_T, ALPHA_BAR, ts, churn=churn, generator=torch.Generator())
    torch.testing.assert_close(x0, torch.full_like(x0, -0.7), atol=1e-9, rtol=0)
    assert all(c.is_floating_point() for c in calls)  # churned sigmas map to fractional t


def test_heun_uses_2n_minus_1_model_calls_and_ddpm_skip_calls_only_model_steps():
    calls: list[int] = []

    def counting(x_t, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x_t)

    x_T = torch.randn(1, 1, 2, 2)
    sample_heun(counting, x_T, ALPHA_BAR, plan("heun", 25).timesteps)
    assert len(calls) == 25
    for steps in (skip_every_third(T), skip_growing(T)):
        calls.clear()
        SAMPLERS["ddpm_skip"].function(
            counting, x_T, ALPHA_BAR, torch.arange(T - 1, -1, -1), model_steps=steps
        )
        assert calls == steps.tolist()


def test_skip_schedules_match_their_definitions():
    third = set(skip_every_third(T).tolist())
    assert third == {t for t in range(T) if t % 3 == 0 or t < 50}
    assert len(third) == 334 + 33  # 0, 3, ..., 999 plus the 33 non-multiples below 50
    growing = skip_growing(T).tolist()
    assert growing == sorted(growing, reverse=True) and growing[0] == 999 and growing[-1] == 0
    assert set(range(99)) <= set(growing)  # every step near the data
    assert growing[1:11] == list(range(989, 889, -10))  # every 10th step near pure noise


@pytest.mark.parametrize("skip", ["every_third", "growing"])
def test_a_plans_skip_schedule_sets_ddpm_skips_model_calls(skip):
    from difflab.samplers.timesteps import skip_model_steps

    calls: list[int] = []

    def counting(x_t, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x_t)

    skip_plan = plan("ddpm_skip", 7, skip=skip)  # steps plays no part
    skip_plan.run(counting, torch.randn(1, 1, 2, 2), ALPHA_BAR)
    assert calls == skip_model_steps(skip, T).tolist()
    assert skip_plan.evaluations == len(calls)


def test_unknown_skip_schedule_names_the_flag():
    from difflab.samplers.timesteps import skip_model_steps

    with pytest.raises(ValueError, match="--sample.skip"):
        skip_model_steps("every_other", T)


def test_karras_sigmas_follow_eq_5():
    sig = karras_sigmas(0.002, 80.0, 18, rho=7.0)
    i = torch.arange(18, dtype=torch.float64)
    expected = (80.0 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    torch.testing.assert_close(sig, expected)
    ts = karras_timesteps(ALPHA_BAR, 10)
    sigma = sigma_from_alpha_bar(ALPHA_BAR)
    assert ts[0].item() == pytest.approx(T - 1) and ts[-1].item() == pytest.approx(0.0, abs=1e-9)
    torch.testing.assert_close(
        sigma_from_alpha_bar(alpha_bar_at(ALPHA_BAR, ts)),
        karras_sigmas(float(sigma[0]), float(sigma[-1]), 10),
    )
    capped = plan("euler", 10).timesteps
    assert sigma_from_alpha_bar(alpha_bar_at(ALPHA_BAR, capped[:1])).item() == pytest.approx(80.0)


@pytest.mark.parametrize(
    "timesteps, match",
    [([10, 10, 5], "strictly decreasing"), ([1000, 5], r"\[0, 999\]"), ([], "non-empty")],
)
def test_bad_timesteps_raise_helpful_errors(timesteps, match):
    with pytest.raises(ValueError, match=match):
        sampler("ddim")(point_predictor(0.0), torch.zeros(1, 1), ALPHA_BAR, torch.tensor(timesteps))


def test_the_registry_rejects_unknown_names_and_budgets_naming_the_flag():
    with pytest.raises(ValueError, match="--sample.sampler"):
        sampler_spec("plms")
    for spec in SAMPLERS.values():
        if "steps" in spec.reads:
            with pytest.raises(ValueError, match="--sample.steps"):
                spec.choose_timesteps(ALPHA_BAR, SimpleNamespace(steps=0, eta=0.0))


def test_config_name_lists_are_the_registries():
    # config imports no torch, so it spells the names out; this ties them to the registries
    assert SAMPLER_NAMES == tuple(SAMPLERS)
    assert CONFIG_SKIP_SCHEDULES == tuple(SKIP_SCHEDULES)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 6, 25])
def test_every_plan_counts_its_network_evaluations(name, steps):
    calls = [0]

    def counting(x_t, t):
        calls[0] += 1
        return point_predictor(0.1)(x_t, t)

    the_plan = plan(name, steps, eta=1.0)
    the_plan.run(counting, torch.randn(2, 1, 2, 2), ALPHA_BAR, generator=torch.Generator())
    assert the_plan.evaluations == calls[0]
    if "steps" in SAMPLERS[name].reads:
        assert the_plan.evaluations <= steps  # a budget of model evaluations, not of steps


def _wobbly(x_t, t):  # a nonlinear, t-dependent stand-in for a network
    return torch.tanh(x_t) * (0.5 + t.float().reshape(-1, 1, 1, 1) / 2000)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("ddpm", {}),
        ("ddim", {}),
        ("dpmpp_2m", {}),
        ("euler", {"churn": Churn(s_churn=10.0)}),
        ("edm", {"churn": Churn(s_churn=10.0)}),
    ],
)
def test_image_k_is_the_same_at_any_batch_size(name, kw):
    seeds = list(range(100, 107))
    base = plan(name, 6, eta=1.0)
    the_plan = dataclasses.replace(base, options={**base.options, **kw})
    runs = [
        sample_in_batches(
            the_plan,
            _wobbly,
            seeds=seeds,
            shape=(1, 3, 3),
            batch_size=bs,
            alpha_bar=ALPHA_BAR,
            device="cpu",
            progress=False,
        )
        for bs in (1, 3, 7)
    ]
    for other in runs[1:]:
        torch.testing.assert_close(other, runs[0], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(runs[0][0], runs[0][1])  # different seeds, different images
    noise = initial_noise(seeds, (1, 3, 3))
    torch.testing.assert_close(noise[4], initial_noise([seeds[4]], (1, 3, 3))[0])


def test_importing_samplers_stays_light():
    code = (
        "import sys, difflab.samplers, difflab.diffusion\n"
        "bad = [m for m in ('difflab.training', 'difflab.models', 'difflab.metrics', 'scipy',"
        " 'diffusers', 'matplotlib', 'wandb') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
