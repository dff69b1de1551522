"""Rebuild the index from the run folders (the folders are the truth), and heal a damaged one.

Every file is opened through `paths.inside`: a run folder that is a symlink leading out of the
runs folder, or a file that leads out of its run folder, is never read. A run folder that
cannot be read (a cut-off config.json) is skipped with a warning naming the file; the others
are still indexed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difflab.tracking.paths import OutsideFolderError, inside, is_inside
from difflab.tracking.run_folder import CONFIG_FILE, METRICS_FILE, SAMPLES_DIR, read_run_config
from difflab.tracking.store import (
    ARTIFACTS_FILE,
    INDEX_FILE,
    STATUS_FILE,
    STATUSES,
    DamagedIndexError,
    RunStore,
    config_facts,
    flatten_config,
    read_jsonl,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)
_SIDECARS = ("", "-wal", "-shm")  # SQLite's database file and its write-ahead log


@dataclass(frozen=True)
class Skipped:
    folder: str
    reason: str


@dataclass(frozen=True)
class Reindexed:
    runs: int
    skipped: list[Skipped] = field(default_factory=list)
    damaged_index_moved_to: str | None = None


@dataclass(frozen=True)
class FolderRows:
    """Everything the index holds about one run folder, read before anything is written."""

    config: dict[str, Any]
    status: dict[str, Any]
    metrics: list[tuple[int, str, float | None]]
    artifacts: list[tuple[int, str, str, str]]


def rebuild_index(runs_dir: str | Path) -> Reindexed:
    """`difflab runs reindex`: rebuild runs.sqlite; a damaged one is moved aside, never deleted."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: no runs folder here (pass --runs-dir)")
    moved = None
    try:
        with RunStore(runs_dir) as store:
            store.check()
    except DamagedIndexError as err:
        if err.busy:
            raise
        moved = _move_aside(runs_dir / INDEX_FILE)
        log.warning(
            "%s: damaged run index (%s); moved it to %s, rebuilding it from the run folders",
            err.path,
            err.reason,
            moved,
        )
    with RunStore(runs_dir) as store:
        done = rebuild(store)
    return Reindexed(done.runs, done.skipped, str(moved) if moved else None)


def rebuild(store: RunStore) -> Reindexed:
    """Replace every row of `store` with what the run folders hold (unreadable ones skipped)."""
    read, skipped = [], []
    for folder in _run_folders(store.runs_dir, skipped):
        try:
            read.append((folder, read_folder(folder)))
        except (OSError, ValueError) as err:
            log.warning("skipping run folder %s: %s", folder, err)
            skipped.append(Skipped(str(folder), str(err)))
    with store.write() as db:
        db.execute("DELETE FROM runs")
        for folder, rows in read:
            insert_rows(db, folder.name, folder.relative_to(store.runs_dir).as_posix(), rows)
    return Reindexed(len(read), skipped)


def _run_folders(runs_dir: Path, skipped: list[Skipped]) -> Iterator[Path]:
    """Folders of `runs_dir` with a config.json; a symlink leading out is skipped (warned)."""
    for entry in sorted(runs_dir.iterdir()):
        config = entry / CONFIG_FILE
        if not (config.is_file() or config.is_symlink()):
            continue
        if not is_inside(runs_dir, entry.name):
            reason = f"a symlink to {entry.resolve()}, outside the runs folder: not followed"
            log.warning("skipping run folder %s: %s", entry, reason)
            skipped.append(Skipped(str(entry), reason))
            continue
        yield runs_dir.resolve() / entry.name


def read_folder(run_dir: Path) -> FolderRows:
    """Read one run folder's files; ValueError naming the file when one is unusable."""
    config = read_run_config(run_dir)
    metrics = [
        (int(r["step"]), str(r["name"]), r["value"])
        for r in _jsonl(run_dir, METRICS_FILE)
        if _is_metric(r)
    ]
    return FolderRows(config, read_status(run_dir), metrics, _artifacts(run_dir))


def insert_rows(db: sqlite3.Connection, name: str, rel_path: str, rows: FolderRows) -> int:
    """Insert one run folder (runs, parameters, metrics, artifacts); returns its run id."""
    dataset, preset = config_facts(rows.config)
    status = rows.status
    cur = db.execute(
        "INSERT INTO runs (name, path, status, started, ended, dataset, preset) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, rel_path, status["status"], status["started"], status.get("ended"), dataset, preset),
    )
    run_id = int(cur.lastrowid)
    db.executemany(
        "INSERT INTO parameters VALUES (?, ?, ?)",
        [(run_id, k, json.dumps(v, default=str)) for k, v in flatten_config(rows.config).items()],
    )
    db.executemany(
        "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)",
        [(run_id, s, m, v) for s, m, v in rows.metrics],
    )
    db.executemany(
        "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
        [(run_id, s, n, k, p) for s, n, k, p in rows.artifacts],
    )
    return run_id


def read_status(run_dir: Path) -> dict:
    """run.json, or a guess from the folder when the run never started a tracker."""
    try:
        status = json.loads(inside(run_dir, STATUS_FILE).read_text())
    except (OSError, ValueError):  # missing, cut off, or leading out of the run folder
        status = {}
    if not isinstance(status, dict):
        status = {}
    if status.get("status") not in STATUSES:
        status["status"] = "failed"  # no record of it ending well
    if not isinstance(status.get("started"), int | float):
        status["started"] = (run_dir / CONFIG_FILE).stat().st_mtime
    if not isinstance(status.get("ended"), int | float):
        status["ended"] = None
    return status


def _jsonl(run_dir: Path, name: str) -> Iterator[dict[str, Any]]:
    try:
        path = inside(run_dir, name)
    except OutsideFolderError as err:
        log.warning("%s", err)
        return iter(())
    return read_jsonl(path)


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
    for r in _jsonl(run_dir, ARTIFACTS_FILE):
        path = (root / str(r.get("path", ""))).resolve()
        step = r.get("step", 0)
        if path.is_relative_to(root) and path != root and isinstance(step, int):
            name, kind = r.get("name", path.stem), r.get("kind", "artifact")
            rows.append((step, str(name), str(kind), path.relative_to(root).as_posix()))
    if not rows:  # a run folder written without a tracker: its sample grids still show
        pngs = [p for p in sorted((root / SAMPLES_DIR).glob("*.png")) if is_inside(root, p)]
        for i, png in enumerate(pngs):
            rows.append((i, "samples", "image", png.relative_to(root).as_posix()))
    return rows


def _move_aside(index: Path) -> Path:
    """Rename runs.sqlite (and its -wal, -shm) to runs.sqlite.damaged-<time>; returns the name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = index.with_name(f"{index.name}.damaged-{stamp}")
    n = 1
    while any(Path(f"{target}{s}").exists() for s in _SIDECARS):
        n += 1
        target = index.with_name(f"{index.name}.damaged-{stamp}-{n}")
    for suffix in _SIDECARS:
        source = Path(f"{index}{suffix}")
        if source.exists():
            source.rename(f"{target}{suffix}")
    return target
