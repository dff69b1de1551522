"""md5 checks of data files against what their publishers released."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from difflab.data.catalog import FileSpec
from difflab.data.errors import DatasetError

Match = Literal["published", "content", "given"]


@dataclass(frozen=True)
class FileCheck:
    """A file that passed verification: where, its md5, and what that md5 matched."""

    path: str
    md5: str
    matched: Match
    """"published": the md5 of the released file; "content": the md5 of its decompressed
    content (a repackaged .gz); "given": an md5 passed by the caller in `checksums=`."""


def md5_hex(data: bytes) -> str:
    """md5 of bytes in memory; it is a checksum against corruption here, not a security hash."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def expected_md5(spec: FileSpec, checksums: Mapping[str, str] | None) -> tuple[str, Match]:
    """The md5 a file must have: the caller's for this file name if given, else the published."""
    if checksums and spec.name in checksums:
        return checksums[spec.name].lower(), "given"
    return spec.md5, "published"


def check_file(
    path: Path,
    raw: bytes,
    spec: FileSpec,
    checksums: Mapping[str, str] | None,
    *,
    content: bytes | None = None,
    dataset: str,
) -> FileCheck:
    """Accept `raw` (the bytes of `path`) if its md5 or, for a known repackaged file, the md5 of
    its decompressed `content` is the expected one; else raise DatasetError."""
    want, how = expected_md5(spec, checksums)
    got = md5_hex(raw)
    if got == want:
        return FileCheck(str(path), got, how)
    if how == "published" and spec.content_md5 and content is not None:
        if md5_hex(content) == spec.content_md5:
            return FileCheck(str(path), got, "content")
    raise DatasetError(mismatch_message(path, got, want, how, dataset=dataset))


def mismatch_message(path: Path, got: str, want: str, how: Match, *, dataset: str) -> str:
    """What a checksum mismatch means and what to do about it."""
    if how == "given":
        return (
            f"{path}: md5 is {got}, not the {want} given for it in checksums=; the file "
            "changed since that md5 was taken: replace it or update the checksum."
        )
    return (
        f"{path}: md5 is {got}, not {want} of the published {dataset} file "
        "(nor does its decompressed content match): the file is corrupted or not the "
        f"official release. Delete it and run `difflab data fetch {dataset}`, or pass "
        f"checksums={{'{path.name}': '<md5>'}} if you changed it on purpose."
    )
