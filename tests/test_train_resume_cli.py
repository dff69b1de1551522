"""`difflab train --resume` on run folders that are damaged, finished, edited or hostile.

A run folder is data: resuming it verifies its checkpoints, never rewrites a finished run,
refuses an edited config.json and runs no command it names unless asked to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
from pathlib import Path

import pytest

import difflab.training
from difflab.cli.main import build_parser, main
from difflab.cli.train import resume_notify
from difflab.config import load_config
from difflab.experiment import start_run
from difflab.io.checkpoint import checkpoint_step, list_checkpoints
from difflab.training import Callback

TINY = ["--preset", "tiny", "--data.limit", "256", "--train.batch-size", "64"]  # 4 steps/epoch
ARGS = [
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


class SigtermInLastValidation(Callback):
    """Sends this process SIGTERM while the last epoch is validated: the checkpoint callback
    saves the epoch's end and stops the run (a kill there would leave the same files)."""

    order = 50

    def after_batch(self, learn):
        if not learn.training and learn.epoch == learn.n_epochs - 1 and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    sent = False


def folder_hashes(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def metric_keys(run_dir: Path) -> list[tuple[str, int]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["name"], r["step"]) for r in rows]


def test_resume_past_a_damaged_checkpoint_is_exact_quiet_and_final(
    tmp_path, monkeypatch, capsys, caplog
):
    """Stopped at the end of the last epoch (step 8); of the two checkpoints kept, from before
    and after its validation, the newer is damaged: the resume warns once, replays the
    validation without duplicating its metric rows, runs no command from the folder, and ends
    on the uninterrupted run's weights. Resuming it again changes nothing.
    """
    caplog.set_level(logging.INFO)
    assert main(["train", *ARGS, "--runs-dir", str(tmp_path / "a"), "--json"]) == 0
    straight = Path(json.loads(capsys.readouterr().out)["run_dir"])

    event = tmp_path / "event.json"
    notify = f"sh -c 'printf %s \"$DIFFLAB_EVENT\" > {event}'"
    real = difflab.training.standard_callbacks
    monkeypatch.setattr(
        difflab.training,
        "standard_callbacks",
        lambda **kw: [*real(**kw), SigtermInLastValidation()],
    )
    runs = tmp_path / "b"
    assert main(["train", *ARGS, "--runs-dir", str(runs), "--notify.command", notify]) == 0
    monkeypatch.undo()
    run_dir = next(runs.glob("0*"))
    assert json.loads(event.read_text())["event"] == "failed"  # the folder's command works
    event.unlink()
    folder = run_dir / "checkpoints"
    assert [checkpoint_step(p) for p in list_checkpoints(folder)] == [8, 8]
    tensors = list_checkpoints(folder)[-1].with_suffix(".safetensors")
    data = bytearray(tensors.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 256] = bytes(256)  # 256 bytes overwritten
    tensors.write_bytes(bytes(data))
    assert ("epoch/valid_loss", 8) in metric_keys(run_dir)  # after the older checkpoint

    capsys.readouterr()
    caplog.clear()
    assert main(["train", "--resume", str(run_dir)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    [damaged] = [w for w in warnings if tensors.name in w]
    [notified] = [w for w in warnings if "notify" in w]
    assert len(warnings) == 2 and "sha256" in damaged and "--resume-notify" in notified
    assert not event.exists(), "a command named by the run folder ran"
    assert tensors.read_bytes() == bytes(data)  # the damaged file is still there, untouched
    model = "model.safetensors"
    assert (run_dir / model).read_bytes() == (straight / model).read_bytes()
    keys = metric_keys(run_dir)
    assert len(keys) == len(set(keys)), "a metric row is duplicated"
    assert keys == metric_keys(straight)

    before = folder_hashes(run_dir)
    caplog.clear()
    assert main(["train", "--resume", str(run_dir)]) == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno >= 20]  # INFO and up
    assert len(lines) == 1 and "finished already" in lines[0], lines
    assert folder_hashes(run_dir) == before
    assert not event.exists()


def parse(*argv: str):
    return build_parser().parse_args(["train", *argv])


@pytest.fixture
def folder_with_notify(tmp_path):
    overrides = {"notify.command": "touch /tmp/pwned", "notify.webhook": "http://example.org/x"}
    config = load_config(preset="tiny", overrides={**overrides, "runs_dir": str(tmp_path)})
    return start_run(config), config


def test_notify_settings_of_the_folder_need_resume_notify(folder_with_notify, caplog):
    run_dir, config = folder_with_notify
    ignored = resume_notify(config, run_dir, parse("--resume", str(run_dir)))
    assert (ignored.notify.command, ignored.notify.webhook) == (None, None)
    assert "ignored" in caplog.text and "touch /tmp/pwned" in caplog.text
    kept = resume_notify(config, run_dir, parse("--resume", str(run_dir), "--resume-notify"))
    assert kept.notify == config.notify
    mine = resume_notify(
        config, run_dir, parse("--resume", str(run_dir), "--notify.command", "echo mine")
    )
    assert (mine.notify.command, mine.notify.webhook) == ("echo mine", None)
    assert (mine.train, mine.model, mine.data) == (config.train, config.model, config.data)


def test_resume_refuses_other_flags_but_takes_notify_flags(folder_with_notify, capsys):
    run_dir, _ = folder_with_notify
    assert main(["train", "--resume", str(run_dir), "--train.lr", "1"]) == 2
    assert "drop train.lr" in capsys.readouterr().err
    assert main(["train", "--resume-notify", *TINY, "--dry-run"]) == 2


def test_an_edited_config_is_refused_naming_the_file(folder_with_notify, capsys):
    run_dir, _ = folder_with_notify
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["train"]["lr"] = 0.5
    config_path.write_text(json.dumps(config))
    before = folder_hashes(run_dir)
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert str(config_path) in err and "edited" in err and len(err.strip().splitlines()) == 1
    assert folder_hashes(run_dir) == before


def test_a_config_linked_from_outside_is_refused_saying_what_to_do(folder_with_notify, capsys):
    run_dir, _ = folder_with_notify
    config_path = run_dir / "config.json"
    outside = run_dir.parent / "elsewhere.json"
    config_path.rename(outside)  # the very bytes the run began with, in another folder
    config_path.symlink_to(outside)
    assert main(["train", "--resume", str(run_dir)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert str(config_path) in line and "not followed" in line and "copy the file itself" in line
