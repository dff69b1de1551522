"""CIFAR-10's python pickle batches, read with an unpickler that builds only what they hold.

Format (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html): each batch is a pickled
dict {"data": uint8 array (10000, 3072) in channel-major order (1024 R, 1024 G, 1024 B, rows of
32), "labels": list of ints, ...}; batches.meta holds "label_names". The files were written by
Python 2, so they are read with encoding="latin1" (str keys; numpy accepts latin1 array data).
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from difflab.data.catalog import DatasetSpec, FileSpec
from difflab.data.checksums import FileCheck, check_file
from difflab.data.errors import DatasetError

MAX_MEMBER_BYTES = 64 << 20
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, wherever it lives
# The only globals a CIFAR batch names: how numpy pickles an array (protocols 2-4).
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a function or class that a CIFAR-10 batch never needs."""


class RestrictedUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"refused to load the global {module}.{name}") from None


def unpickle(data: bytes, path: Path) -> object:
    """The object pickled in `data` (read from `path`), through RestrictedUnpickler."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except RefusedGlobal as err:
        raise DatasetError(
            f"{path}: not a CIFAR-10 batch ({err}); it was not loaded. "
            "Use the files of the official cifar-10-python.tar.gz."
        ) from err
    except Exception as err:  # truncated/garbled pickles raise EOFError, ValueError, ...
        raise DatasetError(
            f"{path}: unreadable pickle ({type(err).__name__}: {err}): the file is "
            "truncated or corrupted; delete it and download it again."
        ) from err


def parse_batch(obj: object, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one unpickled batch."""
    data = obj.get("data") if isinstance(obj, dict) else None
    labels = obj.get("labels") if isinstance(obj, dict) else None
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        raise DatasetError(
            f"{path}: a CIFAR-10 batch is a dict with 'data' (array) and "
            "'labels' (list); this file is something else."
        )
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(
            f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 "
            "(N, 3072) for 32x32 RGB images."
        )
    if len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise DatasetError(f"{path}: {len(labels)} labels for {len(data)} images, or not ints.")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def parse_meta(obj: object, path: Path) -> list[str]:
    """The class names of batches.meta."""
    names = obj.get("label_names") if isinstance(obj, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: batches.meta must hold 'label_names', a list of strings.")
    return names


def read_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """The bytes of the wanted batch files (by base name) inside a .tar.gz, never extracted."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted and name not in found:
                    if member.size > MAX_MEMBER_BYTES:  # real batches are 31 MB
                        raise DatasetError(
                            f"{archive}: {member.name} is {member.size:,} bytes, "
                            "far more than a CIFAR-10 batch; not loaded."
                        )
                    found[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DatasetError(
            f"{archive}: not a complete tar archive ({err}): it is truncated or "
            "corrupted; delete it and download it again."
        ) from err
    missing = sorted(wanted - found.keys())
    if missing:
        raise DatasetError(
            f"{archive}: does not contain {', '.join(missing)}: not the "
            "cifar-10-python.tar.gz archive."
        )
    return found


def read_cifar(
    spec: DatasetSpec,
    split: str,
    files: Mapping[str, tuple[Path, bytes]],
    checksums: Mapping[str, str] | None,
) -> tuple[np.ndarray, np.ndarray, list[str], list[FileCheck]]:
    """Images, labels, class names and checks of a split from its batch files' bytes."""
    checks, images, labels, classes = [], [], [], []
    for fspec in spec.splits[split].files:
        path, raw = files[fspec.name]
        checks.append(check_file(path, raw, fspec, checksums, dataset=spec.name))
        obj = unpickle(raw, path)
        if fspec.name == "batches.meta":
            classes = parse_meta(obj, path)
        else:
            x, y = parse_batch(obj, path)
            images.append(x)
            labels.append(y)
    return np.concatenate(images), np.concatenate(labels), classes, checks


def load_batch_files(
    spec: DatasetSpec, split: str, folder: Path, archive: Path | None
) -> dict[str, tuple[Path, bytes]]:
    """{file name: (path for messages, bytes)} for a split, from a folder or the archive."""
    wanted: list[FileSpec] = list(spec.splits[split].files)
    if archive is not None:
        members = read_members(archive, {f.name for f in wanted})
        return {n: (archive / n, b) for n, b in members.items()}
    out = {}
    for f in wanted:
        try:
            out[f.name] = (folder / f.name, (folder / f.name).read_bytes())
        except OSError as err:
            raise DatasetError(f"{folder / f.name}: cannot be read ({err.strerror}).") from err
    return out
