"""Post-hoc EMA (EDM2): the power-function maths against quadrature and closed forms, the
reconstruction on synthetic trajectories, and the callback's snapshots in a Learner (resume)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from resume_worker import denoise_objective, make_data, make_model
from safetensors import safe_open
from safetensors.torch import load_file

from difflab.io.ema_snapshots import list_snapshots, load_snapshot, reconstruct_state
from difflab.models.posthoc_ema import (
    combine_states,
    gamma_to_sigma_rel,
    power_ema_update,
    profile_inner_products,
    profile_residual,
    sigma_rel_to_gamma,
    solve_posthoc_weights,
)
from difflab.training import Callback, CancelFitException, Learner
from difflab.training.callbacks.posthoc_ema import PostHocEMACB
from difflab.training.standard import standard_callbacks


def closed_form_average(trajectory: torch.Tensor, gamma: float) -> torch.Tensor:
    """The power-function average at t = len(trajectory) of theta_1..theta_t, each weighted by
    the profile's integral over (k-1, k]: (k^(g+1) - (k-1)^(g+1)) / t^(g+1)."""
    t = len(trajectory)
    k = torch.arange(1, t + 1, dtype=torch.float64)
    weights = (k ** (gamma + 1) - (k - 1) ** (gamma + 1)) / t ** (gamma + 1)
    return torch.einsum("k,k...->...", weights, trajectory.double())


def quadrature(f, t_max: float, n: int = 400_001) -> float:
    tau = np.linspace(0.0, t_max, n)
    return float(np.trapezoid(f(tau), tau))


@pytest.mark.parametrize("sigma_rel", [0.01, 0.05, 0.10, 0.2, 0.28])
def test_sigma_rel_is_the_profiles_relative_std(sigma_rel):
    gamma = sigma_rel_to_gamma(sigma_rel)
    p = lambda tau: (gamma + 1) * tau**gamma  # noqa: E731 - profile at t = 1
    mean = quadrature(lambda tau: tau * p(tau), 1.0)
    std = np.sqrt(quadrature(lambda tau: (tau - mean) ** 2 * p(tau), 1.0))
    assert std == pytest.approx(sigma_rel, rel=1e-6)
    assert gamma_to_sigma_rel(gamma) == pytest.approx(sigma_rel, rel=1e-12)
    with pytest.raises(ValueError, match="sigma_rel must be in"):
        sigma_rel_to_gamma(0.3)


def test_inner_products_match_quadrature():
    t = np.array([30.0, 100.0, 100.0, 70.0])
    g = np.array([sigma_rel_to_gamma(s) for s in (0.05, 0.05, 0.10, 0.2)])
    closed = profile_inner_products(t, g, t, g)

    def p(i):
        return lambda tau: (g[i] + 1) * tau ** g[i] / t[i] ** (g[i] + 1)

    for i in range(4):
        for j in range(4):  # both profiles are 0 after the earlier one ends
            f = lambda tau, i=i, j=j: p(i)(tau) * p(j)(tau)  # noqa: E731
            numeric = quadrature(f, min(t[i], t[j]))
            assert closed[i, j] == pytest.approx(numeric, rel=1e-5), (i, j)


def test_the_step_recursion_is_the_closed_form_average():
    trajectory = torch.randn(50, 3, dtype=torch.float64)
    gamma = sigma_rel_to_gamma(0.1)
    average = [torch.full((3,), 7.0, dtype=torch.float64)]  # theta_0: weight 0 (beta_1 = 0)
    for step, theta in enumerate(trajectory, start=1):
        power_ema_update(average, [theta], step, gamma)
    torch.testing.assert_close(average[0], closed_form_average(trajectory, gamma))


def stored_profiles(trajectory: torch.Tensor, sigma_rels, every: int):
    """(steps, gammas, averages) as PostHocEMACB stores them, from a (T, ...) trajectory."""
    gammas = [sigma_rel_to_gamma(s) for s in sigma_rels]
    averages = [[trajectory[0].clone()] for _ in gammas]
    steps, gs, states = [], [], []
    for step, theta in enumerate(trajectory, start=1):
        for avg, gamma in zip(averages, gammas):
            power_ema_update(avg, [theta], step, gamma)
            if step % every == 0:
                steps.append(step)
                gs.append(gamma)
                states.append({"w": avg[0].clone()})
    return steps, gs, states


def test_a_stored_profile_is_reconstructed_to_float_precision():
    torch.manual_seed(0)
    trajectory = torch.cumsum(torch.randn(400, 64), 0)  # float32, like weights
    steps, gammas, states = stored_profiles(trajectory, (0.05, 0.10), every=20)
    for last in (-1, -2):  # the newest 0.10 and 0.05 snapshots
        x = solve_posthoc_weights(steps, gammas, steps[last], gammas[last])
        got = combine_states(zip(x, states), {"w"})["w"]
        torch.testing.assert_close(got, states[last]["w"], rtol=1e-6, atol=1e-6)


def test_another_width_matches_its_direct_average_within_the_cauchy_schwarz_bound():
    """The discrete average is the continuous one of a piecewise-constant trajectory, and the
    weights sum to 1, so the reconstruction's error is <r, theta - c> for the residual profile
    r = p_target - sum_i x_i p_i (which integrates to 0) and any constant c; by Cauchy-Schwarz
    |error| <= ||r||_2 ||theta - c||_2, with ||r||_2 in closed form and ||theta - c||_2^2 =
    sum_k (theta_k - c)^2. The bound must also mean something: far below the gap between the
    target and the nearest stored width."""
    t = torch.arange(1, 1001, dtype=torch.float64)
    trajectory = torch.stack([torch.sin(t / 37), t / 1000, torch.cos(t / 90) * t / 1000], 1)
    steps, gammas, states = stored_profiles(trajectory, (0.05, 0.10), every=10)
    target = sigma_rel_to_gamma(0.08)
    x = solve_posthoc_weights(steps, gammas, 1000, target)
    got = combine_states(zip(x, states), {"w"})["w"]
    direct = closed_form_average(trajectory, target)
    centred = (trajectory - trajectory.mean(0)).norm(dim=0)
    bound = profile_residual(steps, gammas, x, 1000, target) * centred
    error = (got - direct).abs()
    assert (error <= bound + 1e-12).all(), (error, bound)
    nearest_gap = (states[-1]["w"] - direct).abs()  # the stored 0.10 average
    assert (bound < nearest_gap / 10).all(), (bound, nearest_gap)


class Recorder(Callback):
    order = 20  # after the optimiser step, before the EMAs (30)

    def __init__(self):
        self.weights = []

    def after_step(self, learn):
        self.weights.append({k: v.detach().clone() for k, v in learn.model.named_parameters()})


class StopAt(Callback):
    order = 200

    def __init__(self, step):
        self.step = step

    def after_batch(self, learn):
        if learn.training and learn.step == self.step:
            raise CancelFitException


def list_snapshots_meta(path):
    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()


def fit(run_dir, *extra, resume=False, every=5):
    callbacks = standard_callbacks(checkpoint_every=every, progress=False, cpu=True)
    posthoc = PostHocEMACB((0.05, 0.10), every=4)
    learn = Learner(make_model(), make_data(), denoise_objective, lr=1e-2, run_dir=run_dir,
                    callbacks=[*callbacks, posthoc, *extra])  # fmt: skip
    learn.fit(2, resume=run_dir if resume else None)
    return learn


def test_snapshots_hold_the_closed_form_averages(tmp_path):
    recorder = Recorder()
    fit(tmp_path, recorder)
    snapshots = list_snapshots(tmp_path / "ema_snapshots")
    assert [s.step for s in snapshots] == [s for s in (4, 8, 12, 16, 20, 24) for _ in (0, 1)]
    for snap in snapshots[-2:]:
        state = load_snapshot(snap)
        for name in state:
            trajectory = torch.stack([w[name] for w in recorder.weights[: snap.step]])
            expected = closed_form_average(trajectory, snap.gamma).float()
            torch.testing.assert_close(state[name], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stop", [9, 18])  # a snapshot (8, 16) after the last checkpoint (5, 15)
def test_a_resumed_run_writes_the_same_snapshots(tmp_path, stop):
    fit(tmp_path / "full")
    fit(tmp_path / "cut", StopAt(stop))
    fit(tmp_path / "cut", resume=True)
    full = sorted((tmp_path / "full" / "ema_snapshots").iterdir())
    cut = sorted((tmp_path / "cut" / "ema_snapshots").iterdir())
    assert [p.name for p in cut] == [p.name for p in full] and len(full) == 12
    for a, b in zip(full, cut):  # same tensors, bit for bit, and the same metadata
        assert list_snapshots_meta(a) == list_snapshots_meta(b), a.name
        for (name, x), y in zip(load_file(a).items(), load_file(b).values()):
            assert torch.equal(x, y), (a.name, name)
    state, info = reconstruct_state(tmp_path / "cut" / "ema_snapshots", 0.08)
    assert info["step"] == 24 and info["snapshots"] == 12
    assert info["relative_profile_residual"] < 0.05


def test_a_symlink_out_of_the_snapshot_folder_is_refused(tmp_path):
    fit(tmp_path / "run")
    folder = tmp_path / "run" / "ema_snapshots"
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((folder / "ema-000000024-0.0500.safetensors").read_bytes())
    (folder / "ema-000000025-0.0500.safetensors").symlink_to(outside)
    with pytest.raises(ValueError, match="symlink out of"):
        list_snapshots(folder)
