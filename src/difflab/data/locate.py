"""Where data set files are looked for, in order.

1. an explicit `root` (authoritative: if the files are not there, that is an error);
2. `$DIFFLAB_DATA`, either `$DIFFLAB_DATA/<dataset folder>/` or the files directly in it;
3. the user cache, `$DIFFLAB_CACHE` or `${XDG_CACHE_HOME:-~/.cache}/difflab/datasets/<name>/`;
4. system folders (Debian's `dataset-fashion-mnist` installs `/usr/share/datasets/fashion-mnist`);
5. else the files are downloaded into the cache (see download.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from difflab.data.catalog import DatasetSpec
from difflab.data.errors import DatasetError

Origin = Literal["root", "DIFFLAB_DATA", "cache", "system"]
SYSTEM_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))


@dataclass(frozen=True)
class Source:
    """A folder that holds every file of one split (or the archive that holds them)."""

    folder: Path
    origin: Origin
    archive: Path | None = None  # CIFAR-10 read straight from cifar-10-python.tar.gz


def cache_dir() -> Path:
    """The user cache of downloaded data sets."""
    if os.environ.get("DIFFLAB_CACHE"):
        return Path(os.environ["DIFFLAB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "difflab" / "datasets"


def dataset_cache(spec: DatasetSpec) -> Path:
    """Where downloads of this data set go."""
    return cache_dir() / spec.name


def search_bases(root: str | os.PathLike | None) -> list[tuple[Path, Origin]]:
    """The base folders to search, in order, with the origin each stands for."""
    if root is not None:
        return [(Path(root).expanduser(), "root")]
    bases: list[tuple[Path, Origin]] = []
    if os.environ.get("DIFFLAB_DATA"):
        bases.append((Path(os.environ["DIFFLAB_DATA"]).expanduser(), "DIFFLAB_DATA"))
    bases.append((cache_dir(), "cache"))
    bases += [(d, "system") for d in SYSTEM_DIRS]
    return bases


def candidate_folders(spec: DatasetSpec, base: Path, origin: Origin) -> list[Path]:
    """Folders under one base that may hold the files: named sub-folders, then the base itself."""
    if origin == "cache":
        return [base / spec.name]
    return [base / sub for sub in spec.folder_names] + [base]


def find_source(spec: DatasetSpec, split: str, root: str | os.PathLike | None) -> Source | None:
    """The first folder holding the whole split, or None (nothing found anywhere: download).

    A folder holding only some of the split's files is an error, except in the cache, where
    the missing ones are downloaded.
    """
    if root is not None and Path(root).is_file():
        return Source(Path(root).parent, "root", archive=Path(root))
    for base, origin in search_bases(root):
        for folder in candidate_folders(spec, base, origin):
            source = source_in(spec, split, folder, origin)
            if source is not None:
                return source
    if root is not None:
        names = ", ".join(f.name for f in spec.splits[split].files)
        raise DatasetError(
            f"{root}: holds no {spec.name} {split} files (looked for {names} in it and in its "
            f"sub-folders {', '.join(spec.folder_names)}). Point root= at the folder that has "
            f"them, or leave root unset to use DIFFLAB_DATA, the cache or a download."
        )
    return None


def source_in(spec: DatasetSpec, split: str, folder: Path, origin: Origin) -> Source | None:
    """A Source if `folder` holds the split, None if it holds none of it; error if partial."""
    if not folder.is_dir():
        return None
    if spec.archive is not None and (folder / spec.archive.name).is_file():
        files_there = all((folder / f.name).is_file() for f in spec.splits[split].files)
        if not files_there:
            return Source(folder, origin, archive=folder / spec.archive.name)
    names = [f.name for f in spec.splits[split].files]
    present = [n for n in names if (folder / n).is_file()]
    if len(present) == len(names):
        return Source(folder, origin)
    if present and origin != "cache":
        missing = ", ".join(n for n in names if n not in present)
        raise DatasetError(
            f"{folder}: has {', '.join(present)} but not {missing}: the {spec.name} {split} "
            "split is incomplete there. Add the missing files or remove the folder."
        )
    return None
