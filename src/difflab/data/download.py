"""Downloads into the cache: progress bar, md5 check, temp file then atomic rename.

A file reaches its final name only after its md5 matched, so the cache never holds a partial
or corrupted download under a real name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from difflab.data.errors import DatasetError
from difflab.files import atomic_write

CHUNK = 1 << 20


def base_url(default: str, url: str | None) -> str:
    """The base URL to fetch from: the argument, else $DIFFLAB_DOWNLOAD_URL, else the canonical."""
    chosen = url or os.environ.get("DIFFLAB_DOWNLOAD_URL") or default
    return chosen if chosen.endswith("/") else chosen + "/"


def download(url: str, dest: Path, *, md5: str) -> Path:
    """Fetch `url` to `dest` (atomically, only if its md5 is `md5`); DatasetError otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fetch_verified(tmp: Path) -> None:
        with tmp.open("wb") as out:
            got = stream_to(url, out, desc=dest.name)
        if got != md5:  # raising here leaves nothing behind (difflab.files.atomic_write)
            raise DatasetError(
                f"{url}: downloaded file has md5 {got}, expected {md5}: the download is corrupted "
                "or the server holds another file. Nothing was kept; try again or use another "
                "mirror (url= or DIFFLAB_DOWNLOAD_URL)."
            )

    return atomic_write(dest, fetch_verified)


def stream_to(url: str, out, *, desc: str) -> str:
    """Copy the body of `url` into the open file `out` with a progress bar; return its md5."""
    from tqdm.auto import tqdm

    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    done += len(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DatasetError(
            f"{url}: download failed ({err}). Without internet, put the files in a folder and "
            "pass root= or set DIFFLAB_DATA; or set DIFFLAB_DOWNLOAD_URL to a reachable mirror."
        ) from err
    if total is not None and done != total:
        raise DatasetError(f"{url}: download ended after {done} of {total} bytes; try again.")
    return digest.hexdigest()
