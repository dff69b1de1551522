"""Files of the runs folder, opened only where they really are inside it.

A run folder is user data: `code.diff`, a sample grid, `config.json` or the run folder itself
may be a symlink to anywhere (`ln -s /etc/passwd RUN/code.diff`). Everything the board and
`reindex` open goes through `inside`, which resolves symlinks first and refuses a path whose
real location is outside the folder it belongs to.
"""

from __future__ import annotations

from pathlib import Path


class OutsideFolderError(PermissionError):
    """A path (often a symlink) whose real location is outside the folder it must stay in."""


def inside(root: str | Path, path: str | Path) -> Path:
    """The real path of `path` (relative to `root`, or absolute), refused unless inside `root`.

    Raises OutsideFolderError for a path that leads out (a symlink, `..`), ValueError for a
    path no file can have (a NUL byte).
    """
    real_root = Path(root).resolve()
    if "\0" in str(path):
        raise ValueError(f"{path!r}: a file name cannot hold a NUL byte")
    real = (real_root / path).resolve()
    if not real.is_relative_to(real_root):
        raise OutsideFolderError(f"{Path(root) / path} leads outside {real_root}: not followed")
    return real


def read_text_inside(root: str | Path, path: str | Path, *, errors: str = "strict") -> str:
    """The text of `root/path`, refused (OutsideFolderError) where it leads outside `root`."""
    return inside(root, path).read_text(errors=errors)


def is_inside(root: str | Path, path: str | Path) -> bool:
    try:
        inside(root, path)
    except (OutsideFolderError, ValueError):
        return False
    return True
