"""The local run store: a SQLite index over the run folders, `<runs_dir>/runs.sqlite`.

The run folders are the truth (config.json, run.json, metrics.jsonl, artifacts.jsonl); the
index makes listing, comparing and plotting fast and can always be rebuilt with `reindex`.
Several trainings may write at once: WAL mode, a busy timeout and `BEGIN IMMEDIATE` write
transactions (a deferred transaction that upgrades to a writer can fail without waiting).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from difflab.tracking.index_errors import DamagedIndexError, index_errors
from difflab.tracking.liveness import live_status
from difflab.tracking.paths import OutsideFolderError, inside
from difflab.tracking.run_folder import read_run_config

log = logging.getLogger(__name__)

__all__ = ["DamagedIndexError", "RunStore", "index_errors"]

INDEX_FILE = "runs.sqlite"
STATUS_FILE = "run.json"
ARTIFACTS_FILE = "artifacts.jsonl"
RunStatus = Literal["running", "finished", "failed"]
STATUSES = ("running", "finished", "failed")  # "interrupted" is read, never written
_BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    status TEXT NOT NULL, started REAL, ended REAL, dataset TEXT, preset TEXT);
CREATE TABLE IF NOT EXISTS parameters (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT, PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, name, step));
CREATE TABLE IF NOT EXISTS artifacts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (run_id, path));
"""


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table plus the last value of every metric."""

    id: int
    name: str
    path: Path
    status: str
    started: float | None
    ended: float | None
    dataset: str | None
    preset: str | None
    last: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "path": str(self.path),
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "dataset": self.dataset,
            "preset": self.preset,
            "metrics": self.last,
        }


@dataclass(frozen=True)
class Artifact:
    step: int
    name: str
    kind: str
    path: Path  # absolute, inside the run folder


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} -> {"train.lr": 1e-3}; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def config_facts(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """(dataset, model preset) of a resolved RunConfig dict, None where absent."""
    data, model = config.get("data") or {}, config.get("model") or {}
    dataset = data.get("dataset") if isinstance(data, dict) else None
    preset = model.get("preset") if isinstance(model, dict) else None
    return dataset, preset


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file. Lines that are no JSON object (a torn last line after a
    crash, flipped bytes) are skipped, with one warning naming the file; it is never rewritten.
    """
    if not path.is_file():
        return
    damaged = 0
    with path.open("rb") as f:
        for line in f:
            try:
                row = json.loads(line.decode())
            except (UnicodeDecodeError, json.JSONDecodeError):
                row = None
            if isinstance(row, dict):
                yield row
            elif line.strip():
                damaged += 1
    if damaged:
        log.warning(
            "%s: %d line(s) are not JSON rows (cut off by a crash, or damaged): skipped; "
            "the file is kept as it is",
            path,
            damaged,
        )


class RunStore:
    """The SQLite index of one runs folder. Open one per process (or per thread)."""

    def __init__(self, runs_dir: str | Path, *, create: bool = True) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.path = self.runs_dir / INDEX_FILE
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no run index here (run `difflab runs reindex`)")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            with index_errors(self.path):
                self._open(create=create)
        except DamagedIndexError:
            self._db.close()
            raise

    def _open(self, *, create: bool) -> None:
        self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: safe on a crash, no fsync/commit
        if create:
            self._db.execute("PRAGMA journal_mode=WAL")
            with self.write() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if not {"runs", "parameters", "metrics", "artifacts"} <= tables:
            raise sqlite3.DatabaseError("not a difflab run index: its tables are missing")

    def check(self) -> None:
        """Raise DamagedIndexError unless SQLite's quick integrity check passes."""
        with index_errors(self.path):
            result = [r[0] for r in self._db.execute("PRAGMA quick_check")]
            if result != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(map(str, result[:3])))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; waits (busy timeout) while another process writes."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- writing ---------------------------------------------------------------------------

    def register_run(
        self,
        run_dir: str | Path,
        *,
        status: RunStatus = "running",
        started: float | None = None,
        ended: float | None = None,
    ) -> int:
        """Add (or update) a run folder and its flattened config; returns the run id."""
        run_dir = Path(run_dir).resolve()
        config = read_run_config(run_dir)
        dataset, preset = config_facts(config)
        params = [(k, json.dumps(v, default=str)) for k, v in flatten_config(config).items()]
        with self.write() as db:
            db.execute(
                "INSERT INTO runs (name, path, status, started, ended, dataset, preset) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET path=excluded.path,"
                " status=excluded.status, started=excluded.started, ended=excluded.ended,"
                " dataset=excluded.dataset, preset=excluded.preset",
                (
                    run_dir.name,
                    self._relative(run_dir),
                    status,
                    started or time.time(),
                    ended,
                    dataset,
                    preset,
                ),
            )
            run_id = self._run_id(db, run_dir.name)
            db.execute("DELETE FROM parameters WHERE run_id=?", (run_id,))
            db.executemany(
                "INSERT INTO parameters VALUES (?, ?, ?)", [(run_id, k, v) for k, v in params]
            )
        return run_id

    def set_status(self, name: str, status: RunStatus, *, ended: float | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"run status {status!r} is not one of {', '.join(STATUSES)}")
        with self.write() as db:
            db.execute("UPDATE runs SET status=?, ended=? WHERE name=?", (status, ended, name))

    def add_metrics(self, name: str, rows: Iterable[tuple[int, str, float]]) -> None:
        """Add (step, metric, value) rows; a metric logged twice at one step keeps the last."""
        with self.write() as db:
            run_id = self._run_id(db, name)
            db.executemany(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)",
                [(run_id, int(s), str(m), float(v)) for s, m, v in rows],
            )

    def add_artifact(self, name: str, *, step: int, artifact: str, kind: str, path: Path) -> None:
        run_dir = self.run_dir(name)
        rel = Path(path).resolve().relative_to(run_dir)  # ValueError: outside the run folder
        with self.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
                (self._run_id(db, name), int(step), artifact, kind, rel.as_posix()),
            )

    # --- reading ---------------------------------------------------------------------------

    def list_runs(self) -> list[RunRecord]:
        rows = self._db.execute("SELECT * FROM runs ORDER BY name").fetchall()
        last = self._last_values()
        return [self._record(row, last.get(row[0], {})) for row in rows]

    def get_run(self, name: str) -> RunRecord:
        row = self._db.execute("SELECT * FROM runs WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ValueError(f"no run named {name!r} in {self.path}")
        return self._record(row, self._last_values(row[0]).get(row[0], {}))

    def parameters(self, name: str) -> dict[str, Any]:
        rows = self._db.execute(
            "SELECT key, value FROM parameters JOIN runs ON runs.id=run_id WHERE name=? "
            "ORDER BY key",
            (name,),
        ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def metric_names(self, name: str) -> list[str]:
        rows = self._db.execute(
            "SELECT DISTINCT metrics.name FROM metrics JOIN runs ON runs.id=run_id "
            "WHERE runs.name=? ORDER BY metrics.name",
            (name,),
        ).fetchall()
        return [r[0] for r in rows]

    def metric_series(self, name: str, metric: str) -> list[tuple[int, float]]:
        return [
            (int(s), _float(v))
            for s, v in self._db.execute(
                "SELECT step, value FROM metrics JOIN runs ON runs.id=run_id "
                "WHERE runs.name=? AND metrics.name=? ORDER BY step",
                (name, metric),
            )
        ]

    def artifacts(
        self, name: str, *, kind: str | None = None, on_disk: bool = False
    ) -> list[Artifact]:
        """Files logged for a run; `on_disk`: only those still there, inside the run folder
        (a checkpoint pruned after it was logged, or a file that now leads out, is left out)."""
        run_dir = self.run_dir(name)
        rows = self._db.execute(
            "SELECT step, artifacts.name, kind, artifacts.path FROM artifacts "
            "JOIN runs ON runs.id=run_id WHERE runs.name=? AND (? IS NULL OR kind=?) "
            "ORDER BY step, artifacts.name",
            (name, kind, kind),
        ).fetchall()
        found = [Artifact(int(s), n, k, run_dir / p) for s, n, k, p in rows]
        return [a for a in found if _on_disk(run_dir, a.path)] if on_disk else found

    def count(self, table: Literal["runs", "parameters", "metrics", "artifacts"]) -> int:
        if table not in ("runs", "parameters", "metrics", "artifacts"):
            raise ValueError(f"unknown table {table!r}")
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def run_dir(self, name: str) -> Path:
        row = self._db.execute("SELECT path FROM runs WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ValueError(f"no run named {name!r} in {self.path}")
        return (self.runs_dir / row[0]).resolve()

    # --- helpers ---------------------------------------------------------------------------

    def _relative(self, run_dir: Path) -> str:
        try:
            return run_dir.relative_to(self.runs_dir).as_posix()
        except ValueError:
            return str(run_dir)  # a run folder kept elsewhere: stored absolute

    @staticmethod
    def _run_id(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id FROM runs WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ValueError(f"run {name!r} is not registered in the run index")
        return int(row[0])

    def _last_values(self, run_id: int | None = None) -> dict[int, dict[str, float]]:
        rows = self._db.execute(
            "SELECT m.run_id, m.name, m.value FROM metrics m JOIN (SELECT run_id, name, "
            "MAX(step) AS step FROM metrics WHERE ? IS NULL OR run_id=? GROUP BY run_id, name) "
            "USING (run_id, name, step) ORDER BY m.name",
            (run_id, run_id),
        ).fetchall()
        last: dict[int, dict[str, float]] = {}
        for rid, metric, value in rows:
            last.setdefault(rid, {})[metric] = _float(value)
        return last

    def _record(self, row: tuple, last: dict[str, float]) -> RunRecord:
        rid, name, path, status, started, ended, dataset, preset = row
        run_path = (self.runs_dir / path).resolve()
        return RunRecord(
            rid,
            name,
            run_path,
            self._live_status(run_path, status),
            started,
            ended,
            dataset,
            preset,
            dict(last),
        )

    def _live_status(self, run_path: Path, status: str) -> str:
        """ "running", or "interrupted" when run.json says its process is gone (read only)."""
        if status != "running":
            return status
        try:
            info = json.loads(inside(inside(self.runs_dir, run_path), STATUS_FILE).read_text())
        except (OSError, ValueError):  # no run.json, unreadable, or leading out
            return status
        return live_status({**info, "status": status}) if isinstance(info, dict) else status


def _on_disk(run_dir: Path, path: Path) -> bool:
    try:
        return inside(run_dir, path).is_file()
    except (OutsideFolderError, ValueError):
        return False


def _float(value: float | None) -> float:
    """SQLite stores NaN as NULL; give it back as NaN."""
    return float("nan") if value is None else float(value)
