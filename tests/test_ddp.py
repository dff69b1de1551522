"""Two-process DDP on CPU (gloo through Accelerate, started by torchrun): the loss goes down,
both processes end with the same weights and EMA, and only the main process writes; the same
through the real `difflab train` (one run folder, per-rank noise)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from difflab.io.checkpoint import checkpoint_step, list_checkpoints, load_checkpoint

WORKER = Path(__file__).with_name("resume_worker.py")


@pytest.mark.slow
def test_two_process_cpu_ddp(tmp_path):
    # `accelerate launch --cpu` starts several CPU processes only through mpirun; torchrun sets
    # the same environment (RANK, WORLD_SIZE) that Accelerate reads for gloo.
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(tmp_path / "run"),
        str(tmp_path / "wRANK.safetensors"),
        "--epochs",
        "3",
        "--every",
        "4",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    # 96 samples / 2 ranks / batch 8 = 6 steps per epoch: the data really was split
    epochs = re.findall(r"^epoch \d/3 step (\d+): train_loss (\S+)", done.stderr, re.M)
    assert [int(step) for step, _ in epochs] == [6, 12, 18]  # logged once: main process only
    assert float(epochs[-1][1]) < float(epochs[0][1])
    w0, w1 = (load_file(tmp_path / f"w{r}.safetensors") for r in (0, 1))
    assert w0.keys() == w1.keys() and any(k.startswith("ema.") for k in w0)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # weights and EMA agree on both ranks
    # one writer: keep=2 leaves the last two saves, steps 16 and 18 (two writers: 18 and 18)
    saved = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [checkpoint_step(p) for p in saved] == [16, 18]
    assert len(list((tmp_path / "run" / "checkpoints").iterdir())) == 6


@pytest.mark.slow
def test_difflab_train_under_two_processes_makes_one_run_with_per_rank_noise(tmp_path):
    # torchrun, as above: the same environment `accelerate launch` would set up
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    cmd += ["2", "-m", "difflab", "train", "--preset", "tiny", "--runs-dir", str(tmp_path)]
    cmd += ["--json", "--no-progress"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    runs = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs  # made by rank 0, its path broadcast to rank 1
    assert [p.name for p in (tmp_path / ".numbers").iterdir()] == ["00001"]  # one reserved
    assert list(tmp_path.rglob("model.safetensors")) == [runs[0] / "model.safetensors"]
    summary = json.loads(done.stdout)  # one summary: only the main process prints
    assert summary["finished"] and summary["run_dir"] == str(runs[0])
    assert summary["steps"] == 2  # 256 images / 2 ranks / batch 64: the data was split
    # the epoch's training loss is logged once (main process), finite, and recorded once
    losses = re.findall(r"epoch 1/1 step 2: train_loss (\S+)", done.stderr)
    assert len(losses) == 1 and math.isfinite(float(losses[0]))
    rows = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["name"] == "epoch/train_loss"] == [2]
    # Each rank's generator after the same number of draws: equal states would mean equal
    # seeds, i.e. both ranks drew the same noise and timesteps (the bug this test guards).
    checkpoint = load_checkpoint(list_checkpoints(runs[0] / "checkpoints")[-1])
    rng_0, rng_1 = checkpoint["rng_per_rank"]
    assert not torch.equal(rng_0, rng_1)


def test_quickstart_under_two_processes_trains_once_and_evaluates_on_the_main_process(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    cmd += ["2", "-m", "difflab", "quickstart", "--preset", "tiny", "--runs-dir", str(tmp_path)]
    cmd += ["--no-progress", "--eval.n", "64", "--sample.steps", "4"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    runs = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs
    report = json.loads(done.stdout)  # one report: only the main process samples and prints
    assert report["run_dir"] == str(runs[0]) and report["train"]["steps"] == 2
    assert math.isfinite(report["eval"]["fid"]) and report["eval"]["n"] == 64
    assert json.loads((runs[0] / "eval.json").read_text()) == report
