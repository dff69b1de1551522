"""The command line end to end: --help everywhere, usage errors, train -> sample, kill -9 resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from difflab.cli.main import COMMANDS, main
from difflab.samplers import SAMPLERS

TINY = ["--preset", "tiny", "--data.limit", "256", "--train.batch-size", "64"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"] if command else ["--help"])
    assert exit_info.value.code == 0
    assert "usage: difflab" in capsys.readouterr().out


def test_usage_errors_exit_with_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--no-such-flag"])
    assert exit_info.value.code == 2
    assert main(["train", "--train.batch-size", "0", "--dry-run"]) == 2
    assert "--train.batch-size" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "quickstart"])
def test_bad_data_fails_before_a_run_folder_is_made(command, tmp_path, capsys):
    runs = tmp_path / "runs"
    args = [command, "--preset", "tiny", "--data.dataset", str(tmp_path / "missing"),
            "--runs-dir", str(runs)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err  # quickstart first checks that a feature model exists
    assert "missing: neither a known data set" in err or "no feature model for missing" in err
    assert not runs.exists() or not any(runs.iterdir())  # no orphan run folder


def test_sample_on_a_missing_folder_says_it_is_missing(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nope")]) == 2
    assert "nope: no such run folder or model file" in capsys.readouterr().err


def test_an_empty_sweep_is_refused(tmp_path, capsys):
    args = ["eval", str(tmp_path), "--sweep", "--samplers", "", "--steps-list", "5"]
    assert main(args) == 2
    assert "--samplers: give at least one value" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_config(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "tiny", "--train.lr", "1e-3", "--dry-run"])
    config = json.loads(capsys.readouterr().out)
    assert config["train"]["lr"] == 1e-3 and config["model"]["preset"] == "tiny"


def difflab(*args, check=True, **kwargs):
    cmd = [sys.executable, "-m", "difflab", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kwargs)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    event_file = runs / "event.json"
    notify = f"sh -c 'printf %s \"$DIFFLAB_EVENT\" > {event_file}'"
    out = difflab(
        "train", *TINY, "--runs-dir", runs, "--json", "--no-progress", "--notify.command", notify
    )
    summary = json.loads(out.stdout)
    summary["event"] = json.loads(event_file.read_text())
    return Path(summary["run_dir"]), summary


def test_train_writes_a_complete_run_folder(trained_run):
    run_dir, summary = trained_run
    for name in (
        "config.json",
        "environment.json",
        "code.diff",
        "metrics.jsonl",
        "model.safetensors",
        "model.json",
        "samples/epoch_001.png",
    ):
        assert (run_dir / name).is_file(), name
    assert summary["steps"] == 4  # 256 images / 64 per batch, one epoch
    assert json.loads((run_dir / "config.json").read_text())["data"]["limit"] == 256
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["packages"]["torch"].startswith("2.13.0")
    assert np.isfinite(summary["metrics"]["epoch/train_loss"])
    assert summary["event"]["event"] == "finished"  # --notify.command ran at the end


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_sample_works_with_every_registered_sampler(trained_run, sampler, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / sampler
    result = main(
        [
            "sample",
            str(run_dir),
            "--sampler",
            sampler,
            "--steps",
            "4",
            "--n",
            "3",
            "--out",
            str(out),
        ]
    )
    assert result == 0
    images = np.load(out.with_suffix(".npz"), allow_pickle=False)["images"]
    assert images.shape == (3, 1, 28, 28) and images.dtype == np.uint8
    assert out.with_suffix(".png").is_file()


def test_sample_is_the_same_whatever_the_batch_size(trained_run, tmp_path):
    run_dir, _ = trained_run
    for batch in (1, 4):
        main(
            [
                "sample",
                str(run_dir),
                "--sampler",
                "ddim",
                "--eta",
                "1",
                "--steps",
                "3",
                "--n",
                "4",
                "--batch-size",
                str(batch),
                "--no-bf16",
                "--out",
                str(tmp_path / f"b{batch}"),
            ]
        )
    a = np.load(tmp_path / "b1.npz")["images"].astype(int)
    b = np.load(tmp_path / "b4.npz")["images"].astype(int)
    assert np.abs(a - b).max() <= 1  # same seeds, same images (up to float reduction order)


def test_kill_9_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """fp32 on CPU: a run killed mid-epoch and resumed ends bit-identical to a straight run."""
    args = [
        *TINY,
        "--train.epochs",
        "2",
        "--train.mixed-precision",
        "no",
        "--train.checkpoint-every",
        "2",
        "--train.sample-every",
        "0",
        "--no-progress",
    ]
    straight = json.loads(difflab("train", *args, "--runs-dir", tmp_path / "a", "--json").stdout)

    cmd = [sys.executable, "-m", "difflab", "train", *args, "--runs-dir", str(tmp_path / "b")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "b").glob("*/checkpoints/*step2.complete")):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next((tmp_path / "b").glob("0*"))
    assert not (run_dir / "model.safetensors").exists(), "the run finished before the kill"
    difflab("train", "--resume", run_dir)

    a = (Path(straight["run_dir"]) / "model.safetensors").read_bytes()
    b = (run_dir / "model.safetensors").read_bytes()
    assert a == b


def test_train_minutes_ends_the_run_normally_when_the_budget_is_spent(
    tmp_path, capsys, monkeypatch
):
    """A 2-second budget on a 500-epoch run: stopped inside it, saved, recorded as finished."""
    from difflab.tracking.store import RunStore
    from difflab.training.callbacks import budget as budget_module

    budgets = []  # the seconds handed to the budget guard (counted, not timed)
    real_with_budget = budget_module.with_budget

    def spy(callbacks, seconds, **kwargs):
        budgets.append(seconds)
        return real_with_budget(callbacks, seconds, **kwargs)

    monkeypatch.setattr(budget_module, "with_budget", spy)
    args = [*TINY, "--train.epochs", "500", "--train.minutes", str(2 / 60), "--no-progress"]
    assert main(["train", *args, "--runs-dir", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert budgets == [pytest.approx(2.0)]  # --train.minutes 2/60 is a 2-second budget
    assert summary["stopped_by_time_budget"] and summary["finished"]
    assert 0 < summary["steps"] < 500 * 4  # the budget, not the 500 epochs, ended the run
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "model.safetensors").is_file()
    assert np.isfinite(summary["metrics"]["epoch/valid_loss"])  # the cut epoch was validated
    with RunStore(tmp_path) as store:
        assert [run.status for run in store.list_runs()] == ["finished"]
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "wall-clock budget" in capsys.readouterr().err


def test_eval_prints_fid_with_its_floor_for_a_run(trained_run, capsys):
    run_dir, _ = trained_run
    args = ["eval", str(run_dir), "--n", "64", "--steps", "3", "--no-kid", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("fid", "fid_floor", "n", "sampler", "steps", "nfe", "seconds"):
        assert key in result, key
    assert result["n"] == 64 and result["nfe"] == 3
    # an untrained-ish tiny model is far from the data; real images are not
    assert result["fid"] > 2 * result["fid_floor"] > 0


def test_eval_of_real_images_is_near_the_floor(tmp_path, capsys):
    import torch
    from PIL import Image

    from difflab.data import load_images

    # Held-out training images: not the test images behind the reference statistics, and not
    # the floor's subset (ImageEval draws it as randperm(60000, seed 0)[:300]).
    train = load_images("fashion_mnist", "train").images.numpy()
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).numpy()
    held_out = train[np.sort(perm[300:600])]
    np.savez(tmp_path / "real.npz", images=held_out)
    folder = tmp_path / "folder"
    folder.mkdir()
    for k, image in enumerate(held_out):
        Image.fromarray(image[0]).save(folder / f"{k:04d}.png")
    for target in (tmp_path / "real.npz", folder):
        assert main(["eval", str(target), "--dataset", "fashion_mnist", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["n"] == 300 and result["feature_model"] == "fmnist_classifier"
        assert result["fid"] < 3 * result["fid_floor"]
        assert "kid" in result and abs(result["kid"]) < 0.01


def test_eval_sweep_writes_table_and_plots(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    args = [
        "eval",
        str(run_dir),
        "--sweep",
        "--samplers",
        "ddim,euler",
        "--steps-list",
        "2,3",
        "--n",
        "32",
        "--out",
        str(tmp_path),
        "--json",
    ]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["sampler"], r["steps"]) for r in rows] == [
        ("ddim", 2),
        ("ddim", 3),
        ("euler", 2),
        ("euler", 3),
    ]
    assert [r["eta"] for r in rows] == [1.0, 1.0, None, None]  # eta only means something to DDIM
    table = (tmp_path / "sweep.md").read_text()
    assert "| ddim | 1 | 2 | 2 |" in table and "| euler |  | 3 | 3 |" in table
    for name in ("sweep.json", "sweep.md", "sweep_nfe.png", "sweep_time.png"):
        assert (tmp_path / name).is_file(), name


def test_lr_find_suggests_a_learning_rate_from_the_range_test(capsys):
    # fp32: on CPUs without native bf16 the 100 range-test steps run ~3x faster (the rule is
    # the same whatever the precision)
    args = ["train", *TINY, "--train.mixed-precision", "no", "--lr-find", "--json"]
    assert main(args) == 0
    found = json.loads(capsys.readouterr().out)
    lrs, losses = np.array(found["lrs"]), np.array(found["losses"])
    assert np.all(np.diff(lrs) > 0)  # an exponential sweep
    best = lrs[np.argmin(losses)]
    assert found["suggestion"] == pytest.approx(best / 10)  # fast.ai's rule of thumb
