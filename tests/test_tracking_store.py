"""The local run store: run folders + SQLite index, concurrent writers, reindex."""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3

import pytest

from difflab.config import RunConfig, config_to_dict
from difflab.tracking.demo import write_demo_run
from difflab.tracking.local import LocalTracker
from difflab.tracking.query import best_run, open_store, resolve_run
from difflab.tracking.reindex import rebuild
from difflab.tracking.run_folder import METRICS_FILE, create_run_folder
from difflab.tracking.store import INDEX_FILE, RunStore, flatten_config

N_WRITERS, N_STEPS = 4, 150


def _config(**train) -> dict:
    config = config_to_dict(RunConfig())
    config["train"].update(train)
    return config


def test_flatten_config_dots_nested_keys():
    flat = flatten_config({"train": {"lr": 0.1, "opt": {"beta": [0.9, 0.99]}}, "name": None})
    assert flat == {"train.lr": 0.1, "train.opt.beta": [0.9, 0.99], "name": None}


def test_local_tracker_writes_folder_files_and_index(tmp_path):
    run_dir = create_run_folder(tmp_path, _config(lr=0.01), dataset="fashion_mnist", preset="tiny")
    tracker = LocalTracker(run_dir, flush_every=3)
    tracker.start()
    with RunStore(tmp_path) as store:
        assert store.get_run(run_dir.name).status == "running"
    for step in range(1, 8):
        tracker.log_metrics({"train/loss": 1.0 / step}, step=step)
    tracker.log_metrics({"fid": float("nan")}, step=7)  # a diverged metric must not break things
    png = run_dir / "samples" / "epoch_001.png"
    png.write_bytes(b"\x89PNG fake")
    tracker.log_images("samples", png, step=7)
    with pytest.raises(ValueError):  # files outside the run folder are refused
        tracker.log_artifact("x", tmp_path / "elsewhere.bin", kind="artifact", step=7)
    tracker.finish("finished")

    started = json.loads((run_dir / "run.json").read_text())["started"]
    resumed = LocalTracker(run_dir)  # `difflab train --resume`: same run, same start time
    resumed.start()
    resumed.log_metrics({"train/loss": 0.1}, step=7)  # a replayed step replaces, not adds
    resumed.finish("finished")
    assert json.loads((run_dir / "run.json").read_text())["started"] == started

    rows = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
    # the replayed train/loss at step 7 replaced its first row; fid at step 7 stays
    assert [(r["step"], r["name"]) for r in rows[-2:]] == [(7, "fid"), (7, "train/loss")]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 7]
    assert rows[-2]["value"] is None and rows[-1]["value"] == 0.1
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    with RunStore(tmp_path) as store:
        run = store.get_run(run_dir.name)
        assert (run.status, run.dataset, run.preset) == ("finished", "fashion_mnist", "fmnist-cpu")
        assert run.ended >= run.started
        expected = [(s, 1.0 / s) for s in range(1, 7)] + [(7, 0.1)]
        assert store.metric_series(run.name, "train/loss") == expected
        assert store.parameters(run.name)["train.lr"] == 0.01
        assert math.isnan(store.get_run(run.name).last["fid"])
        [art] = store.artifacts(run.name)
        assert (art.step, art.name, art.kind, art.path) == (7, "samples", "image", png)


def _write_concurrently(runs_dir: str, shared: str, k: int) -> str:
    run_dir = create_run_folder(runs_dir, _config(seed=k), dataset="d", preset=f"w{k}")
    mine = LocalTracker(run_dir, flush_every=7, flush_seconds=0.0)
    mine.start()
    with RunStore(runs_dir) as store:  # writes into a run another process also writes to
        for step in range(N_STEPS):
            mine.log_metrics({"train/loss": step * 0.5, "lr": 0.1}, step=step)
            store.add_metrics(shared, [(step, f"writer{k}", float(step))])
    mine.finish("finished")
    return run_dir.name


def test_concurrent_writers_lose_nothing(tmp_path):
    shared = create_run_folder(tmp_path, _config(), dataset="d", preset="shared")
    with RunStore(tmp_path) as store:
        store.register_run(shared)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(N_WRITERS) as pool:
        names = pool.starmap(
            _write_concurrently, [(str(tmp_path), shared.name, k) for k in range(N_WRITERS)]
        )
    assert len(set(names)) == N_WRITERS  # every run got its own folder and number
    assert len({n.split("-")[0] for n in names + [shared.name]}) == N_WRITERS + 1
    with RunStore(tmp_path) as store:
        assert store.count("runs") == N_WRITERS + 1
        assert store.count("metrics") == N_WRITERS * N_STEPS * 3
        for name in names:
            assert len(store.metric_series(name, "train/loss")) == N_STEPS
            assert store.get_run(name).status == "finished"
        for k in range(N_WRITERS):
            assert len(store.metric_series(shared.name, f"writer{k}")) == N_STEPS
    db = sqlite3.connect(tmp_path / INDEX_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reindex_rebuilds_the_index_from_folders(tmp_path):
    a = write_demo_run(tmp_path, _config(lr=0.003), name="alpha", epochs=3, steps_per_epoch=5)
    b = write_demo_run(
        tmp_path,
        _config(lr=0.001),
        name="beta",
        epochs=2,
        steps_per_epoch=5,
        seed=1,
        status="failed",
    )
    with RunStore(tmp_path) as store:
        before = {t: store.count(t) for t in ("runs", "parameters", "metrics", "artifacts")}
        series = store.metric_series(a.name, "fid")
    (tmp_path / INDEX_FILE).unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / (INDEX_FILE + suffix)).unlink(missing_ok=True)
    with open_store(tmp_path) as store:  # no index: built from the run folders
        after = {t: store.count(t) for t in ("runs", "parameters", "metrics", "artifacts")}
        assert after == before
        assert before == {
            "runs": 2,
            "parameters": 2 * len(flatten_config(_config())),
            "metrics": 3 * 5 + 3 * 2 + 2 * 5 + 2 * 2,
            "artifacts": 3 + 1 + 2 + 1,
        }
        # steps exactly, values to float tolerance (pytest.approx takes no nested tuples)
        rebuilt = store.metric_series(a.name, "fid")
        assert [step for step, _ in rebuilt] == [step for step, _ in series]
        assert [v for _, v in rebuilt] == pytest.approx([v for _, v in series])
        assert store.get_run(b.name).status == "failed"
        assert [x.path.name for x in store.artifacts(a.name, kind="image")] == [
            "epoch_001.png",
            "epoch_002.png",
            "epoch_003.png",
        ]
        assert rebuild(store).runs == 2 and store.count("metrics") == before["metrics"]


def test_resolve_run_and_best(tmp_path):
    a = write_demo_run(tmp_path, _config(), name="alpha", epochs=3, steps_per_epoch=2, seed=0)
    b = write_demo_run(tmp_path, _config(), name="beta", epochs=3, steps_per_epoch=2, seed=5)
    with open_store(tmp_path) as store:
        assert resolve_run(store, "00002-beta") == b.name
        assert resolve_run(store, "1") == resolve_run(store, "00001") == a.name
        assert resolve_run(store, str(b)) == b.name
        with pytest.raises(ValueError, match="no run 'gamma'"):
            resolve_run(store, "gamma")
        fids = {r.name: r.last["fid"] for r in store.list_runs()}
        assert best_run(store, "fid").name == min(fids, key=fids.get)
        assert best_run(store, "fid", lower_is_better=False).name == max(fids, key=fids.get)
        with pytest.raises(ValueError, match="kid"):
            best_run(store, "kid")


def test_store_without_index_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="reindex"):
        RunStore(tmp_path, create=False)


def test_tracking_imports_only_the_standard_library():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import difflab.tracking.base, difflab.tracking.local, difflab.tracking.query\n"
        "import difflab.tracking.board.server, difflab.tracking.demo, difflab.cli.runs\n"
        "import difflab.cli.board\n"
        "bad = [m for m in ('torch', 'numpy', 'wandb', 'tensorboard', 'PIL', 'difflab.training',"
        " 'difflab.metrics') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_differing_keys_is_the_one_config_diff():
    """One function for `runs compare` and the board; checked against a pairwise reference."""
    from difflab.cli import runs as runs_cli
    from difflab.tracking.board import pages
    from difflab.tracking.config_diff import differing_keys

    missing = object()
    configs = [
        {"train.lr": 0.1, "seed": 0, "model.ch": [8, 16], "name": None, "only.a": 1},
        {"train.lr": 0.1, "seed": 1, "model.ch": [8, 16], "name": None},
        {"train.lr": 0.1, "seed": 0, "model.ch": [8, 32], "extra": True},
    ]
    keys = {k for c in configs for k in c}
    reference = sorted(
        k
        for k in keys
        if any(
            a.get(k, missing) is missing
            or b.get(k, missing) is missing
            or json.dumps(a[k]) != json.dumps(b[k])
            for a in configs
            for b in configs
        )
    )
    assert differing_keys(configs) == reference == ["extra", "model.ch", "name", "only.a", "seed"]
    assert differing_keys(configs[:1]) == [] and differing_keys([]) == []
    assert differing_keys([{"x": 1}, {"x": 1.0}]) == ["x"]  # 1 and 1.0 are different configs
    # Both callers use it (no second copy left behind).
    assert runs_cli.differing_keys is differing_keys and pages.differing_keys is differing_keys


def test_read_run_config_names_a_damaged_file(tmp_path):
    from difflab.tracking.run_folder import read_run_config

    (tmp_path / "config.json").write_text('{"train": {"lr": 0.')
    with pytest.raises(ValueError, match=r"config\.json.*(not valid JSON|cut off)"):
        read_run_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json.*object"):
        read_run_config(tmp_path)


def test_damaged_metric_lines_are_kept_and_new_rows_start_on_their_own_line(tmp_path, caplog):
    """A torn last row (a crash mid-write) and a line of flipped bytes: the tracker warns once,
    keeps both byte for byte (also when a replayed step rewrites the file) and appends after
    them; reading the file skips exactly those two lines, with one warning naming it."""
    from difflab.tracking.store import read_jsonl

    run_dir = create_run_folder(tmp_path, _config(lr=0.01), dataset="fashion_mnist", preset="tiny")
    good = [{"name": "train/loss", "step": s, "time": 0.0, "value": 1.0 / s} for s in (1, 2)]
    flipped = bytes(b ^ 0xFF for b in b'{"name": "x"}')  # no UTF-8
    damaged = b"".join(json.dumps(r).encode() + b"\n" for r in good) + flipped + b"\n"
    damaged += b'{"name": "train/loss", "st'  # cut off: no newline
    (run_dir / METRICS_FILE).write_bytes(damaged)
    tracker = LocalTracker(run_dir)
    tracker.start()
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert METRICS_FILE in warning and "2 line(s)" in warning
    tracker.log_metrics({"train/loss": 0.5}, step=3)
    tracker.log_metrics({"train/loss": 0.25}, step=2)  # a replayed step: the file is rewritten
    tracker.finish("finished")

    lines = (run_dir / METRICS_FILE).read_bytes().split(b"\n")
    assert lines[1:3] == [flipped, b'{"name": "train/loss", "st']  # kept as they were
    caplog.clear()
    rows = list(read_jsonl(run_dir / METRICS_FILE))
    assert [r["step"] for r in rows] == [1, 3, 2]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(run_dir / METRICS_FILE) in warning and "2 line(s)" in warning
