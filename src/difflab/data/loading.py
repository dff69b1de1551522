"""`load_images`: a data set by name (or a folder of images), verified, as uint8 arrays."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from difflab.data import cifar, idx
from difflab.data.catalog import DATASETS, DatasetSpec, find_spec
from difflab.data.checksums import FileCheck, check_file, expected_md5
from difflab.data.download import base_url, download
from difflab.data.errors import DatasetError
from difflab.data.folder import read_folder
from difflab.data.locate import Source, dataset_cache, find_source, search_bases, source_in

log = logging.getLogger(__name__)
Split = Literal["train", "test"]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A loaded split: all images in one array, verified on load."""

    images: torch.Tensor
    """uint8 (N, C, H, W)."""
    labels: torch.Tensor
    """int64 (N,), indices into `classes`."""
    classes: list[str]
    name: str
    split: str
    source: str = ""
    """The folder (or archive) the files were read from."""
    checks: tuple[FileCheck, ...] = ()
    """The files read and the md5 each one matched (empty for image folders)."""

    def __post_init__(self) -> None:
        # Readers produce numpy arrays; users get tensors (shared memory, no copy).
        object.__setattr__(self, "images", torch.as_tensor(self.images))
        object.__setattr__(self, "labels", torch.as_tensor(self.labels, dtype=torch.int64))

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self) -> dict[str, int]:
        """Number of images of each class."""
        counts = np.bincount(self.labels.numpy(), minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}


def load_images(
    name: str | os.PathLike,
    split: Split = "train",
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> ImageSet:
    """Load `fashion_mnist`, `mnist`, `cifar10` or a folder of PNG/JPEG images.

    Files are looked for in `root`, else `$DIFFLAB_DATA`, the user cache and system folders,
    else downloaded into the cache (from `url` or `$DIFFLAB_DOWNLOAD_URL` if set, unless
    `download=False`). Every load checks md5s (`checksums` maps a file name to the md5 to expect
    instead of the published one), headers, sizes, counts and label range; any problem raises
    DatasetError naming the file. A known name wins over a folder of that name: write
    `./mnist` for the folder.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    spec = find_spec(str(name))
    if spec is None:
        return load_folder(Path(name), split)
    source = find_source(spec, split, root)
    if source is None or source.origin == "cache":
        return load_cached(spec, split, source, download=download, url=url, checksums=checksums)
    return read_source(spec, split, source, checksums)


def load_folder(folder: Path, split: str) -> ImageSet:
    if not folder.exists():
        known = ", ".join(DATASETS)
        raise DatasetError(f"{folder}: neither a known data set ({known}) nor an existing folder.")
    images, labels, classes, read = read_folder(folder, split)
    return ImageSet(images, labels, classes, name=folder.name, split=split, source=str(read))


def load_cached(
    spec: DatasetSpec,
    split: str,
    source: Source | None,
    *,
    download: bool,
    url: str | None,
    checksums: Mapping[str, str] | None,
) -> ImageSet:
    """Read the split from the cache, first downloading what is missing or fails verification."""
    if source is not None:
        try:
            return read_source(spec, split, source, checksums)
        except DatasetError as err:
            if not download:
                raise
            log.warning("%s; deleting the cached copy and downloading it again", err)
            remove_cached(spec, split, source)
    elif not download:
        raise DatasetError(
            f"{spec.name} {split}: not found in {searched_places(spec)}, and download=False. "
            f"Download it with "
            f"`difflab data fetch {spec.name}` or put its files in one of those places."
        )
    try:
        fetched = download_missing(spec, split, url=url, checksums=checksums)
    except DatasetError as err:
        if source is not None:
            raise
        raise DatasetError(
            f"{spec.name} {split}: not found in {searched_places(spec)}; {err}"
        ) from err
    try:
        return read_source(spec, split, fetched, checksums)
    except DatasetError:
        remove_cached(spec, split, fetched)  # never keep a file that failed verification
        raise


def searched_places(spec: DatasetSpec) -> str:
    """The folders looked in, for messages."""
    return ", ".join(str(b) for b, origin in search_bases(None) if origin != "cache") + (
        f" or the cache {dataset_cache(spec)}"
    )


def remove_cached(spec: DatasetSpec, split: str, source: Source) -> None:
    if source.archive is not None:
        source.archive.unlink(missing_ok=True)
    for f in spec.splits[split].files:
        (source.folder / f.name).unlink(missing_ok=True)


def fetch(
    name: str,
    split: Split = "train",
    *,
    url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> ImageSet:
    """Make sure the split is in the user cache (downloading what is missing or fails
    verification) and load it from there, whatever DIFFLAB_DATA holds."""
    spec = find_spec(name)
    if spec is None:
        raise DatasetError(
            f"{name!r} is not a data set that can be downloaded: choose from {', '.join(DATASETS)}."
        )
    source = source_in(spec, split, dataset_cache(spec), "cache")
    return load_cached(spec, split, source, download=True, url=url, checksums=checksums)


def download_missing(
    spec: DatasetSpec,
    split: str,
    *,
    url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Source:
    """Download the split's missing files into the cache (each md5-checked) and return it."""
    folder = dataset_cache(spec)
    base = base_url(spec.url, url)
    wanted = [spec.archive] if spec.archive is not None else list(spec.splits[split].files)
    for f in wanted:
        dest = folder / f.name
        if not dest.is_file():
            log.info("downloading %s%s to %s", base, f.name, dest)
            download(base + f.name, dest, md5=expected_md5(f, checksums)[0])
    archive = folder / spec.archive.name if spec.archive is not None else None
    return Source(folder, "cache", archive=archive)


def read_source(
    spec: DatasetSpec, split: str, source: Source, checksums: Mapping[str, str] | None
) -> ImageSet:
    """Read and verify one split from where it was found."""
    if spec.kind == "cifar":
        files = cifar.load_batch_files(spec, split, source.folder, source.archive)
        images, labels, classes, checks = cifar.read_cifar(spec, split, files, checksums)
    else:
        images, labels, checks = read_idx_pair(spec, split, source.folder, checksums)
        classes = list(spec.classes)
    where = source.archive or source.folder
    check_arrays(spec, split, images, labels, classes, checks, where)
    return ImageSet(
        images,
        labels,
        classes,
        name=spec.name,
        split=split,
        source=str(where),
        checks=tuple(checks),
    )


def read_idx_pair(
    spec: DatasetSpec, split: str, folder: Path, checksums: Mapping[str, str] | None
) -> tuple[np.ndarray, np.ndarray, list[FileCheck]]:
    """Images (N, 1, H, W) and labels (N,) of an IDX split, each file verified."""
    arrays, checks = [], []
    for fspec, ndim in zip(spec.splits[split].files, (3, 1)):
        path = folder / fspec.name
        raw, content = idx.read_gzip(path)
        arrays.append(idx.parse_idx(path, content, ndim=ndim))
        checks.append(check_file(path, raw, fspec, checksums, content=content, dataset=spec.name))
    images, labels = arrays
    # One copy each: frombuffer arrays are read-only views of the decompressed bytes.
    return images[:, None].copy(), labels.astype(np.int64), checks


def check_arrays(
    spec: DatasetSpec,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    checks: list[FileCheck],
    where: Path,
) -> None:
    """Shapes, counts and label range agree with the spec (counts only for published files)."""
    if images.shape[1:] != spec.shape:
        raise DatasetError(
            f"{where}: images are {images.shape[1:]} (C, H, W), "
            f"expected {spec.shape} for {spec.name}."
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{where}: {len(images)} images but {len(labels)} labels: the image "
            "and label files do not belong together."
        )
    published = all(c.matched != "given" for c in checks)
    count = spec.splits[split].count
    if published and len(images) != count:
        raise DatasetError(
            f"{where}: {len(images)} images, expected {count} for {spec.name} {split}."
        )
    if len(classes) != len(spec.classes):
        raise DatasetError(f"{where}: {len(classes)} class names, expected {len(spec.classes)}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DatasetError(
            f"{where}: labels range {labels.min()}..{labels.max()}, expected "
            f"0..{len(classes) - 1}: the label file is corrupted."
        )
