"""`difflab sample --sampler ddpm_skip --skip ...`: the model is called at exactly the chosen steps."""

import json

import numpy as np
import pytest

from difflab.cli.main import main
from difflab.config import load_config
from difflab.experiment import build_model
from difflab.io.trained import save_trained

T = 1000
# The reference work's two schedules, written out here independently of samplers/timesteps.py;
# the sampler always calls the model at its first step, T - 1, as well.
EXPECTED_STEPS = {
    "every_third": {t for t in range(T) if t % 3 == 0 or t < 50} | {T - 1},
    "growing": {t for t in range(T) if (t + 101) % ((t + 101) // 100) == 0} | {T - 1},
}


@pytest.fixture
def counted_model(tmp_path, model_calls):
    """A tiny saved model; `calls` records the timestep of every network call made by `sample`."""
    config = load_config(preset="tiny")
    save_trained(tmp_path / "model", build_model(config, (1, 8, 8)), config, (1, 8, 8))
    return tmp_path / "model", model_calls


def sample_args(model_dir, out, *extra):
    return ["sample", str(model_dir), "--sampler", "ddpm_skip", "--n", "2", "--no-bf16",
            "--out", str(out), "--json", *extra]  # fmt: skip


@pytest.mark.parametrize("skip", sorted(EXPECTED_STEPS))
def test_each_skip_schedule_calls_the_model_at_exactly_its_steps(
    skip, counted_model, tmp_path, capsys
):
    model_dir, calls = counted_model
    assert main(sample_args(model_dir, tmp_path / skip, "--skip", skip)) == 0
    assert len(calls) == len(EXPECTED_STEPS[skip])  # one call per step: batch of 2 in one go
    assert set(calls) == EXPECTED_STEPS[skip]
    summary = json.loads(capsys.readouterr().out)
    assert summary["nfe"] == len(EXPECTED_STEPS[skip]) and summary["skip"] == skip
    images = np.load(tmp_path / f"{skip}.npz")["images"]
    assert images.shape == (2, 1, 8, 8) and images.dtype == np.uint8


def test_steps_is_reported_as_ignored_by_ddpm_skip(counted_model, caplog):
    model_dir, calls = counted_model
    args = ["sample", str(model_dir), "--sampler", "ddpm_skip", "--skip", "growing",
            "--steps", "4", "--n", "1", "--no-bf16"]  # fmt: skip
    assert main(args) == 0
    assert len(calls) == len(EXPECTED_STEPS["growing"])  # the schedule, not 4 steps
    assert "ddpm_skip ignores --steps 4" in caplog.text
    # the default file name says which schedule ran, not a step count that did not apply
    assert (model_dir / "samples" / "ddpm_skip-growing-seed0.npz").is_file()
