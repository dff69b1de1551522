"""Exact resume: a run stopped anywhere (CancelFit in-process, SIGKILL, SIGTERM) and resumed
ends with weights bit-identical to an uninterrupted run; no sample is seen twice or skipped."""

from __future__ import annotations

import logging
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from resume_worker import denoise_objective, make_data, make_model

from difflab.io.checkpoint import checkpoint_step, list_checkpoints
from difflab.training import Callback, CancelFitException, Learner
from difflab.training.standard import standard_callbacks

WORKER = Path(__file__).with_name("resume_worker.py")
BATCHES_PER_EPOCH = 12


class RecordIds(Callback):
    """Sample ids (the labels) seen in training, per epoch."""

    def __init__(self):
        self.seen: dict[int, list[int]] = {}

    def after_batch(self, learn):
        if learn.training:
            self.seen.setdefault(learn.epoch, []).extend(learn.batch[1].tolist())


class StopAt(Callback):
    order = 200  # after the checkpoint callback

    def __init__(self, step: int):
        self.step = step

    def after_batch(self, learn):
        if learn.training and learn.step == self.step:
            raise CancelFitException


def run(run_dir: Path, *extra: Callback, resume: bool = False, every: int = 7) -> Learner:
    callbacks = standard_callbacks(checkpoint_every=every, progress=False, cpu=True)
    learn = Learner(
        make_model(),
        make_data(),
        denoise_objective,
        lr=1e-2,
        run_dir=run_dir,
        valid_data=make_data(seed=7, n=32),
        callbacks=[*callbacks, *extra],
    )
    learn.fit(2, resume=run_dir if resume else None)
    return learn


@pytest.mark.parametrize("stop", [7, 12])  # mid-epoch, and right after the epoch's last batch
def test_in_process_resume_is_exact_and_sees_each_sample_once(tmp_path, stop):
    full_ids, first_ids, second_ids = RecordIds(), RecordIds(), RecordIds()
    full = run(tmp_path / "full", full_ids, every=stop)
    run(tmp_path / "cut", first_ids, StopAt(stop), every=stop)
    resumed = run(tmp_path / "cut", second_ids, resume=True, every=stop)
    assert resumed.step == full.step == 2 * BATCHES_PER_EPOCH
    interrupted = first_ids.seen[0] + second_ids.seen.get(0, [])
    assert interrupted == full_ids.seen[0]  # same order: no duplicate, no gap
    assert sorted(interrupted) == sorted(set(interrupted)) and len(interrupted) == 96
    assert second_ids.seen[1] == full_ids.seen[1]
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_resume_skips_a_damaged_newest_checkpoint_and_is_still_exact(tmp_path, caplog, damage):
    """Checkpoints at steps 4 and 8, stopped at 10, step 8's tensors damaged: the resume
    warns once, starts from step 4 and still ends on the uninterrupted run's weights."""
    full = run(tmp_path / "full", every=4)
    run(tmp_path / "cut", StopAt(10), every=4)
    folder = tmp_path / "cut" / "checkpoints"
    assert [checkpoint_step(p) for p in list_checkpoints(folder)] == [4, 8]
    tensors = list_checkpoints(folder)[-1].with_suffix(".safetensors")
    data = tensors.read_bytes()
    middle = len(data) // 2
    if damage == "flip":
        flipped = bytes(b ^ 0xFF for b in data[middle : middle + 256])
        tensors.write_bytes(data[:middle] + flipped + data[middle + 256 :])
    else:
        tensors.write_bytes(data[:middle])
    damaged = tensors.read_bytes()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="difflab")
    resumed = run(tmp_path / "cut", resume=True, every=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and tensors.name in warnings[0], warnings
    assert "resumed from" in caplog.text and "step 4)" in caplog.text
    assert tensors.read_bytes() == damaged  # kept as it was, for inspection
    assert resumed.step == full.step == 2 * BATCHES_PER_EPOCH
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def start_worker(run_dir: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        str(WORKER),
        str(run_dir),
        str(out),
        "--epochs",
        "3",
        "--every",
        "4",
        *extra,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def wait_for_midepoch_checkpoint(folder: Path, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        steps = [checkpoint_step(p) for p in list_checkpoints(folder)] if folder.is_dir() else []
        if any(s % BATCHES_PER_EPOCH for s in steps):
            return max(steps)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    raise AssertionError("no mid-epoch checkpoint appeared")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's final weights (started once, in the background); its batches'
    sample ids are in `reference.ids_log`."""
    folder = tmp_path_factory.mktemp("reference")
    ids_log = folder / "ids.log"
    proc = start_worker(
        folder / "run", folder / "w.safetensors", "--delay", "0.05", "--ids-log", ids_log
    )

    def weights() -> bytes:
        finish(proc)
        return (folder / "w.safetensors").read_bytes()

    weights.ids_log = ids_log
    yield weights
    if proc.poll() is None:
        proc.kill()


def read_ids_log(path: Path) -> dict[int, tuple[int, list[int]]]:
    """{step: (epoch, sample ids)} of a worker's --ids-log; a torn last line is dropped."""
    batches = {}
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and len(ids := parts[2].split(",")) == 8:
            batches[int(parts[0])] = (int(parts[1]), [int(i) for i in ids])
    return batches


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(tmp_path, reference):
    seed = random.randrange(10**6)
    killed_log, resumed_log = tmp_path / "killed.log", tmp_path / "resumed.log"
    victim = start_worker(
        tmp_path / "run", tmp_path / "w.safetensors", "--delay", "0.05", "--ids-log", killed_log
    )
    wait_for_midepoch_checkpoint(tmp_path / "run" / "checkpoints", victim)
    time.sleep(random.Random(seed).uniform(0.0, 0.6))
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = start_worker(
        tmp_path / "run", tmp_path / "w.safetensors", "--resume", "--ids-log", resumed_log
    )
    finish(resumed)
    assert (tmp_path / "w.safetensors").read_bytes() == reference(), f"kill seed {seed}"

    # The batches that count: the killed run's up to the checkpoint the resume started from
    # (its later ones were thrown away with the optimizer state), then the resumed run's.
    after_kill = read_ids_log(resumed_log)
    first_resumed = min(after_kill)
    batches = {s: b for s, b in read_ids_log(killed_log).items() if s < first_resumed}
    batches |= after_kill
    assert sorted(batches) == list(range(1, 3 * BATCHES_PER_EPOCH + 1)), f"kill seed {seed}"
    assert batches == read_ids_log(reference.ids_log), f"kill seed {seed}"
    interrupted_epoch = batches[first_resumed][0]
    seen = [i for epoch, ids in batches.values() if epoch == interrupted_epoch for i in ids]
    assert sorted(seen) == list(range(BATCHES_PER_EPOCH * 8)), "a sample seen twice or skipped"


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_exits_cleanly(tmp_path, reference):
    victim = start_worker(tmp_path / "run", tmp_path / "w.safetensors", "--delay", "0.05")
    folder = tmp_path / "run" / "checkpoints"
    before = wait_for_midepoch_checkpoint(folder, victim)
    victim.send_signal(signal.SIGTERM)
    out = finish(victim)
    assert "stopped by signal 15" in out
    last = checkpoint_step(list_checkpoints(folder)[-1])
    assert last > before and last < 3 * BATCHES_PER_EPOCH
    assert not (tmp_path / "w.safetensors").exists()
    finish(start_worker(tmp_path / "run", tmp_path / "w.safetensors", "--resume"))
    assert (tmp_path / "w.safetensors").read_bytes() == reference()
