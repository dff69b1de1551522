"""Wiring from config to objects: model files round-trip for difflab's UNet and diffusers'."""

import pytest
import torch

from difflab.cli.experiment import build_model, load_trained, sampling_plan, save_trained
from difflab.config import load_config


@pytest.mark.parametrize("preset", ["tiny", "diffusers"])
def test_saved_model_reloads_with_identical_outputs(preset, tmp_path):
    pytest.importorskip("diffusers", reason="diffusers is a test dependency (pip install .[dev])")
    config = load_config(overrides={"model.preset": preset, "diffusion.objective": "v"})
    torch.manual_seed(0)
    model = build_model(config, (1, 28, 28))
    for p in model.parameters():  # zero-initialised outputs would make the check vacuous
        torch.nn.init.normal_(p, std=0.02)
    save_trained(tmp_path, model, config, (1, 28, 28))
    trained = load_trained(tmp_path)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([5, 700])
    with torch.no_grad():
        expected, got = model.eval()(x, t), trained.model(x, t)
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert trained.objective == "v" and trained.image_shape == (1, 28, 28)
    assert (trained.low, trained.high) == (-0.5, 0.5)


def test_tampered_weights_are_refused(tmp_path):
    config = load_config(preset="tiny")
    save_trained(tmp_path, build_model(config, (1, 8, 8)), config, (1, 8, 8))
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_trained(tmp_path)


def test_sampling_plan_carries_the_skip_schedule_and_reports_ignored_steps(caplog):
    config = load_config(overrides={"sample.sampler": "ddpm_skip", "sample.skip": "growing"})
    plan = sampling_plan(config)
    assert (plan.sampler, plan.skip) == ("ddpm_skip", "growing")
    assert "ignores steps" not in caplog.text  # steps left at its default: nothing to report
    sampling_plan(load_config(overrides={"sample.sampler": "ddpm_skip", "sample.steps": "50"}))
    assert "ddpm_skip ignores steps=50" in caplog.text
