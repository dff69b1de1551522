"""Files of a run folder taken into a self-contained report: images as data: URIs, JSON.

Every file is opened through `paths.inside` (a symlink leading out of the run folder is never
followed), its size is checked before it is read, and anything left out comes back with a
one-line note saying why, for the report to show.
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from difflab.tracking.paths import OutsideFolderError, inside

T = TypeVar("T")

# Raster formats only, told by their first bytes (never by the name: an .svg or .html renamed
# .png must not become a data: URI a browser would run).
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
MAX_JSON_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ReportLimits:
    """How much of each run a report embeds: the file is meant to be sent, so keep it small."""

    max_grids: int = field(
        default=6,
        metadata={"help": "sample grids per run, evenly spaced over the epochs, last always in"},
    )
    max_image_bytes: int = field(
        default=512 * 1024,
        metadata={"help": "a grid file larger than this is left out, with a note saying so"},
    )

    def __post_init__(self) -> None:
        if self.max_grids < 0:
            raise ValueError(
                f"--max-grids: {self.max_grids} is negative; give 0 (no grids) or more"
            )
        if self.max_image_bytes < 1024:
            raise ValueError(
                f"--max-image-kb: {self.max_image_bytes / 1024:g} is below 1; give the largest "
                "grid file to embed in KiB, e.g. --max-image-kb 512"
            )


def kib(size: int) -> str:
    return f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} bytes"


def pick_evenly(items: Sequence[T], k: int) -> list[T]:
    """`k` items evenly spaced over `items`, the first and the last in (all when k >= len)."""
    n = len(items)
    if k >= n:
        return list(items)
    if k <= 0:
        return []
    if k == 1:
        return [items[-1]]
    # round(i * (n - 1) / (k - 1)) in integers, half up: strictly increasing as n > k
    return [items[(2 * i * (n - 1) + (k - 1)) // (2 * (k - 1))] for i in range(k)]


def image_data_uri(root: Path, path: Path, *, max_bytes: int) -> tuple[str | None, str | None]:
    """(data: URI, None) for a PNG or JPEG inside `root` of at most `max_bytes`; else
    (None, a note naming the file and why it is left out)."""
    shown = _shown(root, path)
    try:
        real = inside(root, path)
        size = real.stat().st_size
    except OutsideFolderError:
        return None, f"{shown} leads outside the run folder: left out"
    except (OSError, ValueError):
        return None, f"{shown} cannot be read: left out"
    if size > max_bytes:
        return None, (
            f"{shown} ({kib(size)}) is over the {kib(max_bytes)} cap per image: left out "
            "(raise --max-image-kb to include it)"
        )
    data = real.read_bytes()[: max_bytes + 1]  # the file may have grown since stat
    ctype = next((t for magic, t in _MAGIC if data.startswith(magic)), None)
    if ctype is None:
        return None, f"{shown} is not a PNG or JPEG image: left out"
    if len(data) > max_bytes:
        return None, f"{shown} is over the {kib(max_bytes)} cap per image: left out"
    return f"data:{ctype};base64,{b64encode(data).decode('ascii')}", None


def read_json(root: Path, rel: str, *, max_bytes: int = MAX_JSON_BYTES) -> tuple[Any, str | None]:
    """(data, None) for `root/rel`; (None, None) when there is no such file; (None, a note)
    when it leads outside `root`, is over `max_bytes` or is not JSON."""
    try:
        real = inside(root, rel)
        if not real.is_file():
            return None, None
        size = real.stat().st_size
        if size > max_bytes:
            return None, f"{rel} ({kib(size)}) is over the {kib(max_bytes)} cap: not read"
        return json.loads(real.read_text(encoding="utf-8")), None
    except OutsideFolderError:
        return None, f"{rel} leads outside the run folder: not read"
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError included
        return None, f"{rel} cannot be read ({type(err).__name__}): left out"


def _shown(root: Path, path: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name
