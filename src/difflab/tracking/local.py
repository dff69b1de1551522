"""The default tracker: files in the run folder plus rows in the SQLite run index."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

from difflab.files import atomic_write_bytes, atomic_write_json
from difflab.tracking.run_folder import CONFIG_FILE, METRICS_FILE
from difflab.tracking.store import ARTIFACTS_FILE, STATUS_FILE, RunStatus, RunStore

log = logging.getLogger(__name__)


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append whole lines in one write (O_APPEND), so a crash never interleaves two rows.

    After a torn last line (a crash mid-write) the rows start on a line of their own: glued to
    the torn line they would be lost with it.
    """
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = "\n" + text
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class LocalTracker:
    """metrics.jsonl, artifacts.jsonl and run.json in the run folder, indexed in runs.sqlite.

    Index rows are written in batches (every `flush_every` values or `flush_seconds`), so a
    per-batch loss costs one file append, not one database transaction.

    metrics.jsonl holds one row per (name, step), like the index: a value logged again at a
    step replaces the earlier row. A run resumed from a checkpoint older than its last rows
    replays those steps, so their rows are superseded, not duplicated.
    """

    name = "local"

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any] | None = None,
        *,
        runs_dir: str | Path | None = None,
        flush_every: int = 200,
        flush_seconds: float = 5.0,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.runs_dir = Path(runs_dir) if runs_dir is not None else self.run_dir.parent
        self.config = config
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._store: RunStore | None = None
        self._pending: list[tuple[int, str, float]] = []
        self._last_flush = time.monotonic()
        self._started = 0.0
        self._logged: set[tuple[str, int]] = set()  # (name, step) of the rows in metrics.jsonl

    def start(self) -> None:
        if not (self.run_dir / CONFIG_FILE).is_file():
            if self.config is None:
                raise FileNotFoundError(f"{self.run_dir}: no {CONFIG_FILE} and no config given")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / CONFIG_FILE, self.config)
        self._started = _previous_start(self.run_dir) or time.time()  # a resumed run keeps it
        rows = _metric_rows(self.run_dir / METRICS_FILE)
        self._logged = {key for key, _ in rows if key}
        if damaged := sum(key is None and line.strip() != "" for key, line in rows):
            log.warning(
                "%s: %d line(s) are not metric rows (cut off by a crash, or damaged): "
                "kept as they are, new rows go after them",
                self.run_dir / METRICS_FILE,
                damaged,
            )
        self._write_status("running", ended=None)
        self._store = RunStore(self.runs_dir)
        self._store.register_run(self.run_dir, status="running", started=self._started)

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        now = time.time()
        rows = [
            {"step": int(step), "name": k, "value": _finite_or_none(v), "time": now}
            for k, v in metrics.items()
        ]
        keys = {(k, int(step)) for k in metrics}
        if keys & self._logged:  # a replayed step (resume from an older checkpoint)
            _drop_rows(self.run_dir / METRICS_FILE, keys)
        self._logged |= keys
        append_jsonl(self.run_dir / METRICS_FILE, rows)
        self._pending.extend((int(step), k, float(v)) for k, v in metrics.items())
        if (
            len(self._pending) >= self.flush_every
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def log_images(self, name: str, path: Path, *, step: int) -> None:
        self.log_artifact(name, path, kind="image", step=step)

    def log_artifact(self, name: str, path: Path, *, kind: str = "artifact", step: int) -> None:
        rel = Path(path).resolve().relative_to(self.run_dir)  # only files of this run
        append_jsonl(
            self.run_dir / ARTIFACTS_FILE,
            [{"step": int(step), "name": name, "kind": kind, "path": rel.as_posix()}],
        )
        self._require_store().add_artifact(
            self.run_dir.name, step=step, artifact=name, kind=kind, path=self.run_dir / rel
        )

    def flush(self) -> None:
        """Index the pending values and beat the heartbeat in run.json (see `liveness`)."""
        if self._pending:
            self._require_store().add_metrics(self.run_dir.name, self._pending)
            self._pending = []
            self._write_status("running", ended=None)
        self._last_flush = time.monotonic()

    def finish(self, status: RunStatus = "finished") -> None:
        store = self._require_store()
        try:
            self.flush()
            ended = time.time()
            self._write_status(status, ended=ended)
            store.set_status(self.run_dir.name, status, ended=ended)
        finally:
            store.close()
            self._store = None

    def _require_store(self) -> RunStore:
        if self._store is None:
            raise RuntimeError("LocalTracker: call start() first")
        return self._store

    def _write_status(self, status: RunStatus, *, ended: float | None) -> None:
        atomic_write_json(
            self.run_dir / STATUS_FILE,
            {
                "name": self.run_dir.name,
                "status": status,
                "started": self._started,
                "ended": ended,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "heartbeat": time.time(),
            },
        )


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _metric_rows(path: Path) -> list[tuple[tuple[str, int] | None, str]]:
    """((name, step) or None for a line that is no metric row, line) for each line of a file.

    Bytes that are no UTF-8 (a damaged line) are kept as surrogates, so that `_drop_rows`
    writes such a line back exactly as it was.
    """
    if not path.is_file():
        return []
    out: list[tuple[tuple[str, int] | None, str]] = []
    text = path.read_bytes().decode(errors="surrogateescape")
    if not text:
        return []
    for line in text.split("\n")[: -1 if text.endswith("\n") else None]:
        try:
            row = json.loads(line)
            key = (row["name"], int(row["step"])) if isinstance(row, dict) else None
        except (ValueError, KeyError, TypeError):
            key = None
        out.append((key, line))
    return out


def _drop_rows(path: Path, keys: set[tuple[str, int]]) -> None:
    """Rewrite `path` (atomically) without the rows of `keys`; other lines stay as they were."""
    kept = [line for key, line in _metric_rows(path) if key not in keys]
    text = "".join(line + "\n" for line in kept)
    atomic_write_bytes(path, text.encode(errors="surrogateescape"))


def _previous_start(run_dir: Path) -> float | None:
    try:
        started = json.loads((run_dir / STATUS_FILE).read_text()).get("started")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return float(started) if isinstance(started, int | float) else None
