"""Finding runs by what people type: a folder name, a run number, or a path."""

from __future__ import annotations

import math
from pathlib import Path

from difflab.tracking.store import INDEX_FILE, RunRecord, RunStore


def open_store(runs_dir: str | Path) -> RunStore:
    """The index of `runs_dir`, built from the run folders when it does not exist yet."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: no runs folder here (pass --runs-dir)")
    fresh = not (runs_dir / INDEX_FILE).is_file()
    store = RunStore(runs_dir)
    if fresh:
        from difflab.tracking.reindex import rebuild

        rebuild(store)
    return store


def resolve_run(store: RunStore, ref: str, *, paths: bool = True) -> str:
    """The run name for `ref`: an exact folder name, a number (7 or 00007), or a path.

    The one resolver of run references (`difflab runs` and the board). `paths=False` (the
    board: a URL must not probe the file system) accepts names and numbers only.
    """
    names = [r.name for r in store.list_runs()]
    if ref in names:
        return ref
    if ref.isascii() and ref.isdigit():  # compared as text: no int() of a 5000-digit string
        number = ref.lstrip("0") or "0"
        hits = [n for n in names if _run_number(n) == number]
        if len(hits) == 1:
            return hits[0]
    if paths and "\0" not in ref and Path(ref).exists():
        resolved = Path(ref).resolve()
        hits = [r.name for r in store.list_runs() if r.path == resolved]
        if hits:
            return hits[0]
    what = "a folder name, a run number or a path" if paths else "a folder name or a run number"
    raise ValueError(
        f"no run {ref!r} in {store.runs_dir} (give {what}; "
        f"`difflab runs ls --runs-dir {store.runs_dir}` lists them)"
    )


def _run_number(name: str) -> str | None:
    """ "00007-fmnist-tiny" -> "7"; None for a name that does not start with a number."""
    head = name.split("-", 1)[0]
    return (head.lstrip("0") or "0") if head.isascii() and head.isdigit() else None


def best_run(store: RunStore, metric: str, *, lower_is_better: bool = True) -> RunRecord:
    """The run whose last value of `metric` is best (NaN and missing values never win)."""
    runs = [
        r
        for r in store.list_runs()
        if isinstance(r.last.get(metric), float) and math.isfinite(r.last[metric])
    ]
    if not runs:
        raise ValueError(f"no run in {store.runs_dir} has a finite value of metric {metric!r}")
    key = (lambda r: r.last[metric]) if lower_is_better else (lambda r: -r.last[metric])
    return min(runs, key=key)
