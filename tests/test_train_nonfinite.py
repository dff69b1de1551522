"""A loss that goes non-finite for good: `difflab train` and `difflab quickstart` say that
training did not finish, name the last good checkpoint and exit non-zero (no model is saved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import difflab.diffusion
from difflab.cli.main import main
from difflab.io.checkpoint import checkpoint_step

# Two epochs of 4 steps: epoch 1 ends with a checkpoint (step 4), epoch 2 goes NaN at once.
ARGS = ["--preset", "tiny", "--train.epochs", "2", "--train.max-nonfinite", "2"]
ARGS += ["--train.sample-every", "0", "--no-progress"]
GOOD_STEPS = 4


@pytest.fixture
def nan_after_first_epoch(monkeypatch):
    """The real objective, multiplied by NaN from the 5th training batch on (certain, in-process)."""
    real_make_objective = difflab.diffusion.make_objective

    def make_objective(*args, **kwargs):
        objective = real_make_objective(*args, **kwargs)
        calls = {"train": 0}

        def poisoned(model, batch):
            loss = objective(model, batch)
            if model.training:
                calls["train"] += 1
                if calls["train"] > GOOD_STEPS:
                    return loss * torch.tensor(float("nan"))
            return loss

        return poisoned

    monkeypatch.setattr(difflab.diffusion, "make_objective", make_objective)


def test_train_exits_non_zero_naming_the_last_good_checkpoint(
    nan_after_first_epoch, tmp_path, capsys, caplog
):
    assert main(["train", *ARGS, "--runs-dir", str(tmp_path), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["finished"] is False and summary["stop_reason"] == "nonfinite"
    assert summary["steps"] == GOOD_STEPS  # the NaN steps never reached the weights
    checkpoint = summary["last_checkpoint"]
    assert checkpoint_step(Path(checkpoint)) == GOOD_STEPS  # written before the NaNs began
    run_dir = tmp_path / next(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert not (run_dir / "model.safetensors").exists()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(checkpoint in m and "no model was saved" in m for m in errors), errors
    assert not any(r.getMessage().startswith("done:") for r in caplog.records)


def test_quickstart_stops_before_sampling_with_the_same_message(
    nan_after_first_epoch, tmp_path, capsys, caplog
):
    assert main(["quickstart", *ARGS, "--runs-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().out == ""  # no report: nothing was sampled or evaluated
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("last good checkpoint is" in m and "checkpoints" in m for m in errors), errors
