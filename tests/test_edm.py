"""The EDM formulation (Karras et al. 2022): preconditioning, loss, sigma sampling, the VP <-> VE
map that lets every registered sampler use an EDM model, diffusers' EDM schedulers, and a tiny
`difflab train` + `difflab sample` run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from difflab.config import SampleConfig
from difflab.diffusion import (
    EDMObjective,
    EDMPreconditioning,
    as_noise_predictor,
    edm_schedule,
    log_normal_sigmas,
    sigma_at,
)
from difflab.diffusion.edm import NOISE_LABEL_SCALE
from difflab.samplers import SAMPLERS

SD = 0.5  # sigma_data
SCHEDULE = edm_schedule(1000)
SIGMAS = torch.tensor([0.002, 0.01, 0.1, 0.5, 1.0, 3.0, 20.0, 80.0], dtype=torch.float64)


def sigma_of(noise_label: torch.Tensor) -> torch.Tensor:
    """Invert the network's noise input NOISE_LABEL_SCALE * ln(sigma) / 4."""
    return (noise_label.double() * 4 / NOISE_LABEL_SCALE).exp().reshape(-1, 1, 1, 1)


def ideal_network(c: float, sd: float = SD):
    """F* for the one-point data set {c}: the network output that makes D(x; sigma) = c,
    F* = (c - c_skip x) / c_out, written from Table 1's formulas (x = network input / c_in)."""

    def network(x_in, noise_label, *condition):
        sigma = sigma_of(noise_label).to(x_in.dtype)
        x = x_in * (sigma**2 + sd**2) ** 0.5
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2) ** 0.5
        return (c - c_skip * x) / c_out

    return network


def test_the_preconditioning_matches_diffusers_edm_formulas():
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.EDMEulerScheduler(sigma_data=SD, prediction_type="epsilon")
    p = EDMPreconditioning(SD)
    x, f = (
        torch.randn(8, 1, 1, 1, dtype=torch.float64),
        torch.randn(8, 1, 1, 1, dtype=torch.float64),
    )
    s = SIGMAS.reshape(-1, 1, 1, 1)
    torch.testing.assert_close(p.c_in(s) * x, ref.precondition_inputs(x, s))
    torch.testing.assert_close(p.c_noise(SIGMAS), ref.precondition_noise(SIGMAS))
    torch.testing.assert_close(p.c_skip(s) * x + p.c_out(s) * f, ref.precondition_outputs(x, f, s))


def test_the_ideal_network_recovers_the_point_and_small_sigma_returns_x():
    p, c = EDMPreconditioning(SD), 0.3
    x = torch.randn(len(SIGMAS), 1, 4, 4, dtype=torch.float64) * 10
    denoised = p.denoise(ideal_network(c), x, SIGMAS)
    torch.testing.assert_close(denoised, torch.full_like(x, c), atol=1e-12, rtol=0)
    # sigma -> 0: c_skip -> 1 and c_out -> 0, so D(x; sigma) -> x whatever the network says
    tiny = torch.full((len(x),), 1e-8, dtype=torch.float64)
    torch.testing.assert_close(p.denoise(lambda *a: a[0] * 0 + 5.0, x, tiny), x, atol=1e-6, rtol=0)


def test_the_loss_weight_makes_the_effective_target_unit_variance():
    p = EDMPreconditioning(SD)
    torch.testing.assert_close(
        p.loss_weight(SIGMAS) * p.c_out(SIGMAS) ** 2, torch.ones_like(SIGMAS)
    )
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(100_000, dtype=torch.float64, generator=gen) * SD  # data of std sigma_data
    n = torch.randn(100_000, dtype=torch.float64, generator=gen)
    for sigma in SIGMAS.tolist():
        target = (y - p.c_skip(sigma) * (y + sigma * n)) / p.c_out(sigma)  # what F must match
        assert target.var().item() == pytest.approx(1.0, rel=0.02)


def test_the_objective_is_plain_mse_against_the_effective_target():
    """lambda ||D - y||^2 = ||F - (y - c_skip x) / c_out||^2, recomputed from the same draws."""
    objective = EDMObjective(sigma_data=SD, p_mean=-1.2, p_std=1.2)
    y = torch.randn(16, 1, 4, 4)
    seen = {}

    def network(x_in, noise_label):
        seen["x_in"], seen["label"] = x_in, noise_label
        return torch.tanh(x_in)

    torch.manual_seed(3)
    loss = objective(network, (y, torch.zeros(16, dtype=torch.int64)))
    sigma = sigma_of(seen["label"]).float()
    x = seen["x_in"] * (sigma**2 + SD**2) ** 0.5
    c_skip, c_out = SD**2 / (sigma**2 + SD**2), sigma * SD / (sigma**2 + SD**2) ** 0.5
    expected = (torch.tanh(seen["x_in"]) - (y - c_skip * x) / c_out).pow(2).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=0)
    torch.manual_seed(3)  # the same draws: sigma then the noise n, from the global RNG
    sigma_again = log_normal_sigmas(16, p_mean=-1.2, p_std=1.2)
    torch.testing.assert_close(sigma.flatten(), sigma_again, rtol=1e-5, atol=0)
    torch.testing.assert_close(x, y + sigma_again.reshape(-1, 1, 1, 1) * torch.randn_like(y))


def test_labels_reach_a_conditional_network():
    objective = EDMObjective(sigma_data=SD, p_mean=-1.2, p_std=1.2, null_class=3, cond_drop=0.0)
    got = []
    labels = torch.tensor([0, 1, 2, 1])
    objective(lambda x, t, y: got.append(y) or x * 0, (torch.randn(4, 1, 2, 2), labels))
    assert torch.equal(got[0], labels)


def test_log_normal_sigmas_have_the_configured_log_moments():
    torch.manual_seed(0)
    log_sigma = log_normal_sigmas(100_000, p_mean=-1.2, p_std=1.2).double().log()
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.015)  # std error 0.004
    assert log_sigma.std().item() == pytest.approx(1.2, rel=0.01)


def test_the_edm_schedule_spans_edms_sigma_range_log_spaced():
    sigma = sigma_at(SCHEDULE.alpha_bar, torch.arange(1000, dtype=torch.float64))
    torch.testing.assert_close(sigma[[0, -1]], torch.tensor([0.002, 80.0], dtype=torch.float64))
    ratios = sigma[1:] / sigma[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (80 / 0.002) ** (1 / 999)))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_an_ideal_edm_model_lands_on_the_point_with_every_sampler(name):
    c = 3.0  # outside the data range: landing on it also proves nothing clips by default
    predict = as_noise_predictor(ideal_network(c), SCHEDULE, "edm", sigma_data=SD)
    the_plan = SAMPLERS[name].plan(SCHEDULE.alpha_bar, SampleConfig(sampler=name, steps=10))
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn(4, 1, 4, 4, generator=gen, dtype=torch.float64)
    x0 = the_plan.run(predict, x_T, SCHEDULE.alpha_bar, generator=gen)
    torch.testing.assert_close(x0, torch.full_like(x0, c), atol=1e-8, rtol=0)


def _wobbly(x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
    """A nonlinear, noise-dependent stand-in for F (c_noise = ln(sigma) / 4)."""
    return torch.tanh(x_in) * (0.7 + 0.2 * c_noise.reshape(-1, 1, 1, 1).to(x_in.dtype))


@pytest.mark.parametrize(
    "name, scheduler",
    [("euler", "EDMEulerScheduler"), ("dpmpp_2m", "EDMDPMSolverMultistepScheduler")],
)
def test_the_vp_samplers_on_an_edm_model_follow_diffusers_edm_schedulers(name, scheduler):
    """Our VP samplers through the VP <-> VE map against diffusers' EDM schedulers, which step
    in sigma space directly: same sigmas (eq. 5, rho 7, [0.002, 80]), same x0_hat every step."""
    diffusers = pytest.importorskip("diffusers")
    steps = 12
    ref = getattr(diffusers, scheduler)(sigma_data=SD, prediction_type="epsilon")
    ref.set_timesteps(steps)
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    ours_x0: list[torch.Tensor] = []
    network = lambda x_in, label: _wobbly(x_in, label / NOISE_LABEL_SCALE)  # noqa: E731
    predict = as_noise_predictor(network, SCHEDULE, "edm", sigma_data=SD)
    the_plan = SAMPLERS[name].plan(SCHEDULE.alpha_bar, SampleConfig(sampler=name, steps=steps))
    sigmas = sigma_at(SCHEDULE.alpha_bar, the_plan.timesteps)
    torch.testing.assert_close(sigmas, ref.sigmas[:-1].double(), rtol=1e-5, atol=0)
    out = the_plan.run(
        predict, x_T, SCHEDULE.alpha_bar, on_step=lambda info: ours_x0.append(info.x0_hat)
    )

    sample = x_T.float() * ref.init_noise_sigma  # sqrt(80^2 + 1): the VP x_T in sigma space
    ref_x0 = []
    for t in ref.timesteps:
        f = _wobbly(ref.scale_model_input(sample, t), t.expand(len(sample)))
        result = ref.step(f, t, sample)
        sample = result.prev_sample
        ref_x0.append(result.pred_original_sample if scheduler.startswith("EDMEuler") else None)
    torch.testing.assert_close(out.float(), sample, rtol=1e-4, atol=1e-4)
    if scheduler.startswith("EDMEuler"):
        for ours, theirs in zip(ours_x0, ref_x0, strict=True):
            torch.testing.assert_close(ours.float(), theirs, rtol=1e-4, atol=1e-4)


def test_objective_edm_needs_the_edm_schedule_and_names_the_flag():
    from difflab.config.schema import DiffusionConfig

    with pytest.raises(ValueError, match="--diffusion.schedule edm"):
        DiffusionConfig(objective="edm")
    with pytest.raises(ValueError, match="--diffusion.sigma-data"):
        DiffusionConfig(objective="edm", schedule="edm", sigma_data=0.0)
    with pytest.raises(ValueError, match="sigma_data"):
        as_noise_predictor(ideal_network(0.0), SCHEDULE, "edm")


def test_a_tiny_edm_run_trains_samples_with_edm_and_round_trips(tmp_path, capsys):
    from difflab.cli.main import main
    from difflab.config import RunConfig, apply_overrides
    from difflab.experiment.build import build_data
    from difflab.io.trained import load_trained

    args = ["--preset", "tiny", "--data.limit", "256", "--train.epochs", "1", "--no-progress"]
    args += ["--diffusion.objective", "edm", "--diffusion.schedule", "edm"]
    assert (
        main(["train", *args, "--train.sample-every", "0", "--runs-dir", str(tmp_path), "--json"])
        == 0
    )
    run_dir = Path(json.loads(capsys.readouterr().out)["run_dir"])

    # sigma_data was measured from the training images and recorded in model.json
    config = apply_overrides(RunConfig(), {"data.limit": 256, "model.preset": "tiny"})
    images = build_data(config, validate=False).train.x.double()
    trained = load_trained(run_dir)
    assert trained.objective == "edm"
    assert trained.sigma_data == pytest.approx(images.std().item(), abs=1e-6)
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["run_config"]["diffusion"]["sigma_data"] == trained.sigma_data

    out = tmp_path / "edm-samples"
    sample_args = ["--sampler", "edm", "--steps", "5", "--n", "4", "--churn", "5"]
    assert main(["sample", str(run_dir), *sample_args, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["nfe"] == 5 and summary["churn"] == 5.0  # Heun: 3 steps, 2 * 3 - 1 calls
    assert Path(summary["grid"]).is_file()
    reloaded = load_trained(run_dir)
    for key, value in trained.model.state_dict().items():
        torch.testing.assert_close(reloaded.model.state_dict()[key], value, rtol=0, atol=0)
    assert math.isfinite(float(trained.sigma_data))
