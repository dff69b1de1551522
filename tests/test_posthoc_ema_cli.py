"""`difflab ema` end to end: a tiny run with post-hoc EMA snapshots -> a loadable model file
of another width, and a FID sweep over widths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from difflab.cli.main import main
from difflab.io.ema_snapshots import reconstruct_state
from difflab.io.trained import load_trained

TINY = ["--preset", "tiny", "--data.limit", "256", "--train.batch-size", "64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", *TINY, "--train.posthoc-ema-every", "2", "--train.sample-every", "0",
            "--runs-dir", str(runs), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    (found,) = [p for p in runs.iterdir() if (p / "model.json").is_file()]
    return found


def test_the_run_stores_both_profiles_every_k_steps(run_dir):
    names = sorted(p.name for p in (run_dir / "ema_snapshots").iterdir())
    assert names == [
        f"ema-00000000{s}-{w}.safetensors" for s in (2, 4) for w in ("0.0500", "0.1000")
    ]


def test_ema_writes_a_loadable_model_of_the_requested_width(run_dir, tmp_path, capsys):
    out = tmp_path / "model-ema008"
    assert main(["ema", str(run_dir), "--sigma-rel", "0.08", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sigma_rel"] == 0.08 and result["step"] == 4 and result["snapshots"] == 4
    trained = load_trained(out)
    expected, _ = reconstruct_state(run_dir / "ema_snapshots", 0.08)
    for name, value in trained.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert trained.meta["posthoc_ema"]["sigma_rel"] == 0.08
    original = load_trained(run_dir)
    assert trained.image_shape == original.image_shape
    assert (
        main(["sample", str(out), "--n", "2", "--steps", "2", "--out", str(tmp_path / "s.png")])
        == 0
    )


def test_sweep_measures_each_width_and_names_the_best(run_dir, tmp_path, capsys):
    args = ["ema", str(run_dir), "--sweep", "0.05,0.2", "--n", "8", "--steps", "2",
            "--out", str(tmp_path), "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert [r["sigma_rel"] for r in result["rows"]] == [0.05, 0.2]
    best = min(result["rows"], key=lambda r: r["fid"])
    assert result["best_sigma_rel"] == best["sigma_rel"] and "<- best" in captured.err
    assert json.loads((tmp_path / "ema_sweep.json").read_text())["rows"] == result["rows"]
    assert (tmp_path / "ema_sweep.png").stat().st_size > 0


def test_a_run_without_snapshots_is_refused_with_the_fix(tmp_path, capsys):
    assert main(["ema", str(tmp_path), "--sigma-rel", "0.1"]) == 2
    assert "--train.posthoc-ema-every" in capsys.readouterr().err


def test_a_bad_width_names_the_flag(capsys):
    assert main(["train", *TINY, "--train.posthoc-ema-sigma-rels", "0.05,0.5", "--dry-run"]) == 2
    assert "--train.posthoc-ema-sigma-rels" in capsys.readouterr().err
