"""The fault suite's shared pieces: one tiny trained run per session, copied for every case,
and the summary line printed at the end (`fault suite: N cases tried, tracebacks 0, ...`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .cases import RUN_NAME
from .harness import TALLY, difflab

# 4 steps an epoch (256 images, batch 64): checkpoints at steps 4 and 8, at the end of epoch 2
# before and after its validation; keep 2 leaves 000003-step8 (mid) and 000004-step8 (end).
TRAIN = ["--preset", "tiny", "--train.epochs", "2", "--train.checkpoint-every", "4"]
FAST = ["--train.sample-every", "0", "--no-progress"]  # sample grids cost half the time


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny run (model.safetensors, two checkpoints, metrics), trained once.

    DIFFLAB_FAULTS_RUN=RUN_DIR reuses a run trained with these flags (while writing cases).
    """
    runs = tmp_path_factory.mktemp("fault-suite-run") / "runs"
    if given := os.environ.get("DIFFLAB_FAULTS_RUN"):
        shutil.copytree(given, runs / RUN_NAME, symlinks=True)
        return runs / RUN_NAME
    out = difflab("train", *TRAIN, *FAST, "--runs-dir", runs, "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    run_dir = Path(json.loads(out.stdout)["run_dir"])
    assert run_dir.name == RUN_NAME
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.safetensors")) == [
        "000003-step8.safetensors",
        "000004-step8.safetensors",
    ]
    return run_dir


@pytest.fixture(scope="session")
def interrupted_run(trained_run, tmp_path_factory) -> Path:
    """The same run as a SIGKILL after its last checkpoint leaves it: no model file yet and
    run.json still "running" (its process is gone), so `train --resume` has work to do."""
    run_dir = tmp_path_factory.mktemp("fault-suite-interrupted") / RUN_NAME
    shutil.copytree(trained_run, run_dir, symlinks=True)
    for name in ("model.safetensors", "model.json"):
        (run_dir / name).unlink()
    status = json.loads((run_dir / "run.json").read_text())
    status.update(status="running", ended=None)
    (run_dir / "run.json").write_text(json.dumps(status, indent=2, sort_keys=True))
    return run_dir


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if TALLY["cases"]:
        terminalreporter.write_line(
            f"fault suite: {TALLY['cases']} cases tried, tracebacks {TALLY['tracebacks']}, "
            f"silent corruptions {TALLY['silent corruptions']}"
        )
