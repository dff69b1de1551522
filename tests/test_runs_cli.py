"""`difflab runs`: tables and JSON over fixture runs written through the tracking API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from difflab.cli.main import main
from difflab.config import RunConfig, config_to_dict
from difflab.tracking.demo import write_demo_run
from difflab.tracking.store import INDEX_FILE, RunStore


@pytest.fixture()
def runs_dir(tmp_path):
    config = config_to_dict(RunConfig())
    write_demo_run(tmp_path, config, name="alpha", epochs=3, steps_per_epoch=4, seed=0)
    config["train"]["lr"] = 0.01
    write_demo_run(tmp_path, config, name="beta", epochs=3, steps_per_epoch=4, seed=7)
    return tmp_path


def run_json(capsys, *argv) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ls_lists_runs_with_last_metrics(runs_dir, capsys):
    rows = run_json(capsys, "runs", "ls", "--runs-dir", str(runs_dir))
    assert [r["name"] for r in rows] == ["00001-alpha", "00002-beta"]
    with RunStore(runs_dir) as store:
        for row in rows:
            assert row["metrics"]["fid"] == store.metric_series(row["name"], "fid")[-1][1]
    assert main(["runs", "ls", "--runs-dir", str(runs_dir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "run",
        "status",
        "started",
        "dataset",
        "preset",
        "epoch/valid_loss",
        "fid",
        "train/loss",
    ]
    assert table[2].startswith("00001-alpha  finished")


def test_show_accepts_name_number_and_path(runs_dir, capsys):
    by_number = run_json(capsys, "runs", "show", "2", "--runs-dir", str(runs_dir))
    by_path = run_json(
        capsys, "runs", "show", str(runs_dir / "00002-beta"), "--runs-dir", str(runs_dir)
    )
    assert by_number == by_path and by_number["name"] == "00002-beta"
    assert by_number["config"]["train.lr"] == 0.01
    assert sum(f["kind"] == "image" for f in by_number["files"]) == 3


def test_compare_shows_only_differing_config(runs_dir, capsys):
    result = run_json(capsys, "runs", "compare", "1", "00002-beta", "--runs-dir", str(runs_dir))
    assert result["config_differences"] == {"train.lr": [0.003, 0.01]}
    assert set(result["metrics"]) == {"fid", "train/loss", "epoch/valid_loss"}


def test_best_picks_lowest_or_highest(runs_dir, capsys):
    rows = run_json(capsys, "runs", "ls", "--runs-dir", str(runs_dir))
    fids = {r["name"]: r["metrics"]["fid"] for r in rows}
    low = run_json(capsys, "runs", "best", "--metric", "fid", "--runs-dir", str(runs_dir))
    high = run_json(
        capsys, "runs", "best", "--metric", "fid", "--higher-is-better", "--runs-dir", str(runs_dir)
    )
    assert low["run"]["name"] == min(fids, key=fids.get)
    assert high["run"]["name"] == max(fids, key=fids.get)


def test_reindex_and_missing_index(runs_dir, capsys):
    (runs_dir / INDEX_FILE).unlink()
    assert run_json(capsys, "runs", "reindex", "--runs-dir", str(runs_dir))["runs"] == 2
    assert len(run_json(capsys, "runs", "ls", "--runs-dir", str(runs_dir))) == 2


def test_user_errors_are_one_line(runs_dir, capsys):
    assert main(["runs", "show", "99", "--runs-dir", str(runs_dir)]) == 2
    assert "no run '99'" in capsys.readouterr().err
    assert main(["runs", "ls", "--runs-dir", str(runs_dir / "nope")]) == 2
    assert "no runs folder" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "--help"])
    assert exit_info.value.code == 0 and "compare" in capsys.readouterr().out


# --- a damaged store heals (difflab issue 15 item 5) -------------------------------------------


def _difflab(*argv: str) -> subprocess.CompletedProcess:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "difflab", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_damaged_index_is_one_line_and_reindex_moves_it_aside(runs_dir, capsys):
    garbage = b"this is not a SQLite database\n" * 50
    for suffix in ("-wal", "-shm"):
        (runs_dir / (INDEX_FILE + suffix)).unlink(missing_ok=True)
    (runs_dir / INDEX_FILE).write_bytes(garbage)
    out = _difflab("runs", "ls", "--runs-dir", str(runs_dir))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert INDEX_FILE in line and "difflab runs reindex" in line
    for argv in (["show", "1"], ["best"], ["compare", "1", "2"]):  # every reader says so
        assert main(["runs", *argv, "--runs-dir", str(runs_dir)]) == 2
        assert "difflab runs reindex" in capsys.readouterr().err

    result = run_json(capsys, "runs", "reindex", "--runs-dir", str(runs_dir))
    assert result["runs"] == 2
    [aside] = list(runs_dir.glob(INDEX_FILE + ".damaged-*"))
    assert aside.read_bytes() == garbage  # kept, never deleted
    assert result["damaged_index_moved_to"] == str(aside)
    names = [r["name"] for r in run_json(capsys, "runs", "ls", "--runs-dir", str(runs_dir))]
    assert names == ["00001-alpha", "00002-beta"]


def test_cut_off_config_skips_that_run_and_names_the_file(runs_dir, capsys, caplog):
    config = runs_dir / "00001-alpha" / "config.json"
    config.write_text(config.read_text()[:40])  # a crash mid-write
    (runs_dir / INDEX_FILE).unlink()
    rows = run_json(capsys, "runs", "ls", "--runs-dir", str(runs_dir))
    assert [r["name"] for r in rows] == ["00002-beta"]
    assert str(config) in caplog.text
    result = run_json(capsys, "runs", "reindex", "--runs-dir", str(runs_dir))
    assert result["runs"] == 1 and result["skipped"][0]["folder"] == str(config.parent)


# --- smaller: interrupted runs, pruned checkpoints ---------------------------------------------

_TRAIN_THEN_HANG = """
import sys, time
from difflab.tracking.local import LocalTracker
tracker = LocalTracker(sys.argv[1], {"train": {"lr": 0.1}})
tracker.start()
tracker.log_metrics({"train/loss": 1.0}, step=1)
tracker.flush()
print("started", flush=True)
time.sleep(600)
"""


def test_killed_run_reads_interrupted_without_rewriting_its_files(tmp_path, capsys):
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run_dir = tmp_path / "00001-killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _TRAIN_THEN_HANG, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "started"
        [row] = run_json(capsys, "runs", "ls", "--runs-dir", str(tmp_path))
        assert row["status"] == "running"  # alive: still running
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    status_file = run_dir / "run.json"
    before = status_file.read_bytes()
    [row] = run_json(capsys, "runs", "ls", "--runs-dir", str(tmp_path))
    assert row["status"] == "interrupted"
    assert run_json(capsys, "runs", "show", "1", "--runs-dir", str(tmp_path))["status"] == (
        "interrupted"
    )
    assert status_file.read_bytes() == before  # read, never rewritten
    assert json.loads(before)["pid"] == proc.pid


def test_stale_heartbeat_from_another_host_reads_interrupted(tmp_path, capsys):
    from difflab.tracking.liveness import HEARTBEAT_STALE_S

    run_dir = tmp_path / "00001-remote"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    now = time.time()
    for name, beat, want in (("stale", now - 2 * HEARTBEAT_STALE_S, "interrupted"),
                             ("fresh", now - 5, "running")):  # fmt: skip
        status = {"status": "running", "started": now - 3 * HEARTBEAT_STALE_S, "ended": None,
                  "pid": 1, "host": "another-machine.invalid", "heartbeat": beat}  # fmt: skip
        (run_dir / "run.json").write_text(json.dumps(status))
        (tmp_path / INDEX_FILE).unlink(missing_ok=True)
        [row] = run_json(capsys, "runs", "ls", "--runs-dir", str(tmp_path))
        assert row["status"] == want, name


def test_show_lists_only_checkpoints_still_on_disk(runs_dir, capsys):
    before = run_json(capsys, "runs", "show", "1", "--runs-dir", str(runs_dir))
    checkpoints = [f for f in before["files"] if f["name"] == "checkpoint"]
    assert len(checkpoints) == 1
    Path(checkpoints[0]["path"]).unlink()  # pruned (keep-last-k) after it was logged
    after = run_json(capsys, "runs", "show", "1", "--runs-dir", str(runs_dir))
    assert after["files"] == [f for f in before["files"] if f["name"] != "checkpoint"]
