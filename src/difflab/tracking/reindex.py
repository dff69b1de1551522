"""Rebuild the index rows of one run folder from its files (the folders are the truth)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from difflab.tracking.run_folder import METRICS_FILE, SAMPLES_DIR, read_run_config
from difflab.tracking.store import (
    ARTIFACTS_FILE,
    STATUS_FILE,
    STATUSES,
    config_facts,
    flatten_config,
    read_jsonl,
)


def read_status(run_dir: Path) -> dict:
    """run.json, or a guess from the folder when the run never started a tracker."""
    path = run_dir / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        status = {}
    if status.get("status") not in STATUSES:
        status["status"] = "failed"  # no record of it ending well
    if status.get("started") is None:
        status["started"] = (run_dir / "config.json").stat().st_mtime
    return status


def read_run_folder(db: sqlite3.Connection, run_dir: Path, rel_path: str) -> int:
    """Insert one run folder (runs, parameters, metrics, artifacts); returns its run id."""
    config = read_run_config(run_dir)
    dataset, preset = config_facts(config)
    status = read_status(run_dir)
    cur = db.execute(
        "INSERT INTO runs (name, path, status, started, ended, dataset, preset) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            run_dir.name,
            rel_path,
            status["status"],
            status["started"],
            status.get("ended"),
            dataset,
            preset,
        ),
    )
    run_id = int(cur.lastrowid)
    db.executemany(
        "INSERT INTO parameters VALUES (?, ?, ?)",
        [(run_id, k, json.dumps(v, default=str)) for k, v in flatten_config(config).items()],
    )
    db.executemany(
        "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)",
        [
            (run_id, int(r["step"]), str(r["name"]), r["value"])
            for r in read_jsonl(run_dir / METRICS_FILE)
            if _is_metric(r)
        ],
    )
    db.executemany(
        "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
        [(run_id, s, n, k, p) for s, n, k, p in _artifacts(run_dir)],
    )
    return run_id


def _is_metric(row: dict) -> bool:
    return (
        isinstance(row.get("step"), int)
        and isinstance(row.get("name"), str)
        and (row.get("value") is None or isinstance(row.get("value"), int | float))
    )


def _artifacts(run_dir: Path) -> list[tuple[int, str, str, str]]:
    """artifacts.jsonl rows whose file lies inside the run folder; else the sample PNGs."""
    root = run_dir.resolve()
    rows = []
    for r in read_jsonl(run_dir / ARTIFACTS_FILE):
        path = (root / str(r.get("path", ""))).resolve()
        if path.is_relative_to(root) and path != root:
            rows.append(
                (
                    int(r.get("step", 0)),
                    str(r.get("name", path.stem)),
                    str(r.get("kind", "artifact")),
                    path.relative_to(root).as_posix(),
                )
            )
    if not rows:  # a run folder written without a tracker: its sample grids still show
        for i, png in enumerate(sorted((root / SAMPLES_DIR).glob("*.png"))):
            rows.append((i, "samples", "image", png.relative_to(root).as_posix()))
    return rows
