"""Two-process DDP on CPU (gloo through Accelerate, started by torchrun): the loss goes down,
both processes end with the same weights and EMA, and only the main process writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from difflab.io.checkpoint import checkpoint_step, list_checkpoints

WORKER = Path(__file__).with_name("test_resume_worker.py")


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
