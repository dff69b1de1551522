"""Tracking on a real training run: `difflab train --trackers local,wandb,tensorboard` with FID
every epoch on padded images and a webhook, then every consumer reads the same run back —
the SQLite store, W&B's offline record file, TensorBoard's event files, `difflab runs`, the
board over HTTP and the webhook's messages.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from test_notify import Collector
from test_tracking_wandb import history_row, read_finished_records

from difflab.tracking.board.server import make_server

pytest.importorskip("wandb", reason="wandb is an optional extra (pip install difflab[wandb])")
pytest.importorskip("tensorboard", reason="tensorboard is an optional extra")

EPOCHS = 2


def difflab(*args, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "difflab", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    wandb_dir = tmp_path_factory.mktemp("wandb")
    hook = Collector()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir)}
    try:
        out = difflab(
            "train", "--preset", "tiny", "--data.limit", "256", "--train.batch-size", "32",
            "--train.epochs", EPOCHS, "--data.pad", "2",  # 28x28 -> 32x32; FID must crop it
            "--train.eval-every", "1", "--train.eval-n", "64", "--sample.steps", "4",
            "--trackers", "local,wandb,tensorboard", "--notify.webhook", hook.url,
            "--notify.when", "fid<1e9", "--runs-dir", runs, "--json", "--no-progress",
            env=env,
        )  # fmt: skip
    finally:
        hook.shutdown()
        hook.server_close()
    summary = json.loads(out.stdout)
    return {"runs": runs, "run_dir": Path(summary["run_dir"]), "summary": summary,
            "wandb_dir": wandb_dir, "events": hook.events, "stderr": out.stderr}  # fmt: skip


def fids_in_metrics_file(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["value"] for row in rows if row["name"] == "fid"]


def test_fid_is_computed_every_epoch_on_cropped_padded_samples(tracked_run):
    fids = fids_in_metrics_file(tracked_run["run_dir"])
    assert len(fids) == EPOCHS and all(math.isfinite(f) and f > 0 for f in fids)
    assert "FID" in tracked_run["stderr"]


def test_runs_cli_reads_the_run_from_the_sqlite_store(tracked_run):
    runs, run_dir = tracked_run["runs"], tracked_run["run_dir"]
    assert (runs / "runs.sqlite").is_file()
    last_fid = fids_in_metrics_file(run_dir)[-1]
    [row] = json.loads(difflab("runs", "ls", "--runs-dir", runs, "--json").stdout)
    assert row["name"] == run_dir.name and row["status"] == "finished"
    assert row["metrics"]["fid"] == pytest.approx(last_fid)
    shown = json.loads(difflab("runs", "show", run_dir.name, "--runs-dir", runs, "--json").stdout)
    assert shown["metrics"]["fid"] == pytest.approx(last_fid)
    best = json.loads(
        difflab("runs", "best", "--metric", "fid", "--runs-dir", runs, "--json").stdout
    )
    assert best["run"]["name"] == run_dir.name and best["value"] == pytest.approx(last_fid)


def test_wandb_offline_record_holds_the_losses_fids_and_grids(tracked_run):
    [path] = tracked_run["wandb_dir"].glob("wandb/offline-run-*/run-*.wandb")
    history = [history_row(r.history) for r in read_finished_records(path) if r.HasField("history")]
    # 16 steps: the running mean `train/loss` is reported every 10 steps.
    assert [h["trainer/step"] for h in history if "train/loss" in h] == [10]
    logged = [h["fid"] for h in history if "fid" in h]
    assert logged == pytest.approx(fids_in_metrics_file(tracked_run["run_dir"]))
    assert sum("samples" in h for h in history) == EPOCHS


def test_tensorboard_event_files_hold_the_same_fids(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tracked_run["run_dir"] / "tensorboard"
    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0}).Reload()
    fids = [e.value for e in acc.Scalars("fid")]
    assert fids == pytest.approx(fids_in_metrics_file(tracked_run["run_dir"]), rel=1e-6)
    assert len(acc.Images("samples")) == EPOCHS


def test_webhook_got_the_threshold_and_the_end(tracked_run):
    kinds = [event["event"] for event in tracked_run["events"]]
    assert "threshold" in kinds and kinds[-1] == "finished"


def test_board_serves_the_run_page_with_its_curves_and_grids(tracked_run):
    server = make_server(tracked_run["runs"], port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        name = tracked_run["run_dir"].name
        with urllib.request.urlopen(f"http://{host}:{port}/run/{name}", timeout=10) as page:
            html = page.read().decode()
        assert html.count('class="series"') >= 2  # loss and FID curves
        assert f"/file/{name}/samples/epoch_{EPOCHS:03d}.png" in html
    finally:
        server.shutdown()
        server.server_close()
