"""`difflab runs`: tables and JSON over fixture runs written through the tracking API."""

from __future__ import annotations

import json

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
