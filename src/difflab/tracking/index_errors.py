"""The run index's one error: runs.sqlite busy or damaged, said in one line with its fix."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class DamagedIndexError(ValueError):
    """runs.sqlite cannot be read; `difflab runs reindex` rebuilds it from the run folders."""

    def __init__(self, path: Path, err: BaseException) -> None:
        busy = "locked" in str(err) or "busy" in str(err)
        fix = (
            "another process holds it; try again when it is done"
            if busy
            else f"run `difflab runs reindex --runs-dir {path.parent}` to move it aside and "
            "rebuild it from the run folders"
        )
        super().__init__(f"{path}: {'busy' if busy else 'damaged'} run index ({err}); {fix}")
        self.path, self.busy, self.reason = path, busy, str(err)


@contextmanager
def index_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors about `path` into DamagedIndexError (one line that says the fix)."""
    try:
        yield
    except sqlite3.DatabaseError as err:
        raise DamagedIndexError(path, err) from None
