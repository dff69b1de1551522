"""Real images for reference statistics, floors and the classifier: uint8 arrays + checksums.

Uses `difflab.data.load_images` when that package provides it; otherwise reads the
Fashion-MNIST IDX files directly (the format is four lines of code).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

# --- data -------------------------------------------------------------------------------------

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx_gz(path: Path) -> np.ndarray:
    """IDX format (LeCun et al.): magic (0, 0, dtype=0x08 uint8, ndim), big-endian dims, data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an uint8 IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _read_fashion_mnist(split: str, root: str | None) -> tuple[np.ndarray, np.ndarray]:
    base = Path(root or os.environ.get("DIFFLAB_DATA", "~/.cache/difflab/datasets")).expanduser()
    folder = base / "fashion-mnist" if (base / "fashion-mnist").is_dir() else base
    img_name, lbl_name = _IDX_FILES[split]
    if not (folder / img_name).is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST {split} images not found at {folder / img_name}; "
            "pass --root or set DIFFLAB_DATA to the folder holding fashion-mnist/"
        )
    images = _read_idx_gz(folder / img_name)[:, None]
    return images, _read_idx_gz(folder / lbl_name).astype(np.int64)


def load_split(dataset: str, split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 1, 28, 28) and int64 labels, via difflab.data when it is available."""
    try:
        from difflab.data import load_images
    except ImportError:
        load_images = None
    if load_images is not None:
        image_set = load_images(dataset, split=split, root=root)
        return np.asarray(image_set.images), np.asarray(image_set.labels)
    if dataset != "fashion_mnist":
        raise ValueError(f"dataset {dataset!r}: only fashion_mnist is supported for the classifier")
    return _read_fashion_mnist(split, root)


def data_checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the decoded uint8 images and int64 labels (independent of the file format)."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()
