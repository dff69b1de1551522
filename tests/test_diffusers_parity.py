"""Step-by-step parity with diffusers' schedulers: same noise predictor, same x_T, same noise.

diffusers clips x0 to +-1 by default (clip_sample=True): it is turned off here, and difflab
never clips unless asked. Every comparison uses diffusers' own float32 alphas_cumprod as our
alpha_bar table, so the only differences are float32 rounding inside diffusers.
"""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import cosine_schedule, linear_schedule
from difflab.samplers import SAMPLERS
from difflab.samplers.timesteps import (
    karras_timesteps,
    leading_timesteps,
    linspace_timesteps,
    trailing_timesteps,
)

diffusers = pytest.importorskip(
    "diffusers", reason="parity tests need diffusers (pip install -e '.[dev]')"
)
# diffusers builds numpy arrays from torch tensors in a way numpy 2 warns about; not our code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

T = 1000
SHAPE = (2, 1, 4, 4)


def net(x_t, t):
    """A nonlinear, t-dependent stand-in for a trained eps model (t: int, float, 0-dim or (B,))."""
    t = torch.as_tensor(t, device=x_t.device).float().reshape(-1, *([1] * (x_t.ndim - 1)))
    return torch.tanh(x_t) * (0.5 + t / 2000) + 0.1 * x_t


def x_T_of(seed=0):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def ours(name, x_T, alpha_bar, timesteps, **kw):
    """Our sampler's states x_t before every step, plus its output."""
    states = []
    out = SAMPLERS[name].function(
        net, x_T, alpha_bar, timesteps, on_step=lambda s: states.append(s.x_t), **kw
    )
    return [*states, out]


def theirs(scheduler, x, *, to_vp=None, **step_kw):
    """diffusers' loop: scale_model_input -> model -> step; states before each step, then output."""
    states = [x]
    for t in scheduler.timesteps:
        eps = net(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(eps, t, x, **step_kw).prev_sample
        states.append(x)
    return states


def assert_trajectories_close(mine, reference, *, atol=2e-5, rtol=2e-5):
    assert len(mine) == len(reference)
    for i, (a, b) in enumerate(zip(mine, reference)):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m, i=i: f"step {i}: {m}")


def table(scheduler):
    return scheduler.alphas_cumprod.double()


# --- schedules and timestep spacings ---------------------------------------------------------


def test_schedules_match_diffusers_betas():
    lin = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_end=0.01)
    torch.testing.assert_close(linear_schedule(T, 1e-4, 0.01).beta.float(), lin.betas)
    cos = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(cosine_schedule(T).beta.float(), cos.betas)


@pytest.mark.parametrize("steps", [1, 7, 10, 50, 333, 1000])
@pytest.mark.parametrize(
    "spacing, ours_fn",
    [
        ("linspace", linspace_timesteps),
        ("leading", leading_timesteps),
        ("trailing", trailing_timesteps),
    ],
)
def test_timestep_spacings_match_diffusers(spacing, ours_fn, steps):
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    scheduler.set_timesteps(steps)
    assert ours_fn(T, steps).tolist() == scheduler.timesteps.tolist()


def test_karras_timesteps_match_diffusers():
    scheduler = diffusers.EulerDiscreteScheduler(num_train_timesteps=T, use_karras_sigmas=True)
    scheduler.set_timesteps(12)
    mine = karras_timesteps(table(scheduler), 12)
    torch.testing.assert_close(mine.float(), scheduler.timesteps, atol=2e-3, rtol=0)


# --- samplers ----------------------------------------------------------------------------------


# Not compared: trailing + "beta". Ho et al.'s Algorithm 2 adds no noise at the last step and
# neither do we; diffusers adds it whenever that step's t > 0 (trailing ends at t = 49), which
# only matters for "fixed_large" (with "fixed_small" that variance is exactly 0 there).
@pytest.mark.parametrize(
    "timesteps, variance, variance_type",
    [
        ("full", "beta_tilde", "fixed_small"),
        ("trailing20", "beta_tilde", "fixed_small"),
        ("leading20", "beta_tilde", "fixed_small"),
        ("full", "beta", "fixed_large"),
        ("leading20", "beta", "fixed_large"),
    ],
)
def test_ddpm_matches_ddpm_scheduler(timesteps, variance, variance_type):
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T, clip_sample=False, variance_type=variance_type
    )
    ts = {
        "full": torch.arange(T - 1, -1, -1),
        "trailing20": trailing_timesteps(T, 20),
        "leading20": leading_timesteps(T, 20),
    }[timesteps]
    if timesteps != "full":
        scheduler.set_timesteps(timesteps=ts.tolist())
    x_T = x_T_of()
    mine = ours(
        "ddpm",
        x_T,
        table(scheduler),
        ts,
        generator=torch.Generator().manual_seed(5),
        variance=variance,
    )
    reference = theirs(scheduler, x_T, generator=torch.Generator().manual_seed(5))
    assert_trajectories_close(mine, reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("eta", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_ddim_matches_ddim_scheduler(spacing, eta):
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=T, clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing
    )
    scheduler.set_timesteps(20)
    x_T = x_T_of(1)
    mine = ours(
        "ddim",
        x_T,
        table(scheduler),
        scheduler.timesteps,
        eta=eta,
        generator=torch.Generator().manual_seed(9),
    )
    reference = theirs(scheduler, x_T, eta=eta, generator=torch.Generator().manual_seed(9))
    assert_trajectories_close(mine, reference)


@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("steps, spacing", [(10, "linspace"), (20, "linspace"), (25, "trailing")])
def test_dpmpp_2m_matches_dpm_solver_multistep(steps, spacing, beta_schedule):
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T,
        beta_schedule=beta_schedule,
        algorithm_type="dpmsolver++",
        solver_order=2,
        solver_type="midpoint",
        lower_order_final=True,
        final_sigmas_type="zero",
        thresholding=False,
        timestep_spacing=spacing,
    )
    scheduler.set_timesteps(steps)
    x_T = x_T_of(2)
    mine = ours("dpmpp_2m", x_T, table(scheduler), scheduler.timesteps)
    reference = theirs(scheduler, x_T)
    assert_trajectories_close(mine, reference, atol=1e-4, rtol=1e-4)


def _euler_scheduler(kind, steps):
    if kind == "karras":
        scheduler = diffusers.EulerDiscreteScheduler(num_train_timesteps=T, use_karras_sigmas=True)
        scheduler.set_timesteps(steps)
        return scheduler, karras_timesteps(table(scheduler), steps)
    scheduler = diffusers.EulerDiscreteScheduler(num_train_timesteps=T, timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    return scheduler, trailing_timesteps(T, steps)


@pytest.mark.parametrize("kind", ["trailing", "karras"])
def test_euler_matches_euler_discrete_scheduler(kind):
    scheduler, ts = _euler_scheduler(kind, 12)
    sigmas = scheduler.sigmas.double()
    x_T = x_T_of(3)
    mine = ours("euler", x_T, table(scheduler), ts)
    # diffusers integrates x_sigma = x_t * sqrt(1 + sigma^2); map its states back to x_t
    reference = theirs(scheduler, x_T.double() * (1 + sigmas[0] ** 2).sqrt())
    reference = [(x / (1 + s**2).sqrt()).float() for x, s in zip(reference, sigmas)]
    assert_trajectories_close(mine, reference, atol=1e-4, rtol=1e-4)


def test_heun_matches_heun_discrete_scheduler():
    ts = trailing_timesteps(T, 8)
    scheduler = diffusers.HeunDiscreteScheduler(num_train_timesteps=T)
    scheduler.set_timesteps(timesteps=ts.tolist())
    x_T = x_T_of(4)
    out = SAMPLERS["heun"].function(net, x_T, table(scheduler), ts)
    reference = theirs(scheduler, x_T * (1 + scheduler.sigmas[0].double() ** 2).sqrt().float())
    assert len(reference) == 2 * len(ts)  # 2N - 1 model calls
    torch.testing.assert_close(out, reference[-1], atol=1e-4, rtol=1e-4)
