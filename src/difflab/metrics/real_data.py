"""Real labelled images for the classifier, reference statistics and floors, and their identity.

Everything is read through `difflab.data.load_images` (verified IDX/CIFAR files or an image
folder). A known data set keeps its own train/test split; a folder of class sub-folders uses
its `train/` and `test/` sub-folders when it has both, else a fixed stratified 1/6 of each
class is held out as the test split (seeded, so it is the same on every machine).

A data set's identity is its name plus a sha256: of the decoded images and labels of both
splits for a known data set (so a repackaged but identical file still matches), of the
manifest of relative paths, sizes and file sha256s for a folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from difflab.data.errors import DatasetError

HOLDOUT_FRACTION = 1 / 6
HOLDOUT_SEED = 20240614  # fixed: the held-out split must not move with the training seed
MIN_SIZE = 16


def load_split(dataset: str, split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) and int64 labels of a data set's split (difflab.data)."""
    from difflab.data import load_images

    image_set = load_images(dataset, split=split, root=root)
    return np.asarray(image_set.images), np.asarray(image_set.labels)


def data_checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the decoded uint8 images and int64 labels (independent of the file format)."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def identity_from_checksums(name: str, checksums: dict[str, str]) -> dict[str, str]:
    """A known data set's identity from its split checksums ({"train": ..., "test": ...})."""
    blob = json.dumps({"train": checksums["train"], "test": checksums["test"]}, sort_keys=True)
    return {"name": name, "kind": "named", "sha256": hashlib.sha256(blob.encode()).hexdigest()}


@dataclass(frozen=True, eq=False)
class LabelledData:
    """Both splits of a labelled data set as uint8 (N, C, H, W) / int64 arrays."""

    name: str
    classes: list[str]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    identity: dict[str, str]
    test_split: str  # "test" (the data set's own) or "holdout-1/6"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.train_images.shape[1:])  # type: ignore[return-value]


def load_labelled(dataset: str, root: str | None = None) -> LabelledData:
    """A known data set by name, or a folder with one sub-folder of images per class."""
    from difflab.data.catalog import find_spec

    spec = find_spec(dataset)
    if spec is not None:
        train, train_labels = load_split(spec.name, "train", root)
        test, test_labels = load_split(spec.name, "test", root)
        sums = {
            "train": data_checksum(train, train_labels),
            "test": data_checksum(test, test_labels),
        }
        identity = identity_from_checksums(spec.name, sums)
        classes = list(spec.classes)
        return LabelledData(
            spec.name, classes, train, train_labels, test, test_labels, identity, "test"
        )
    return _load_folder(Path(dataset))


def _load_folder(folder: Path) -> LabelledData:
    from difflab.data import load_images

    check_labelled_folder(folder)
    identity = {"name": folder.name, "kind": "folder", "sha256": folder_manifest_sha256(folder)}
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        train, test = load_images(folder, "train"), load_images(folder, "test")
        if train.classes != test.classes:
            raise DatasetError(
                f"{folder}: train/ has classes {train.classes} but test/ has {test.classes}; "
                "give both the same class sub-folders."
            )
        data = (
            train.images.numpy(),
            train.labels.numpy(),
            test.images.numpy(),
            test.labels.numpy(),
        )
        split = "test"
    else:
        image_set = load_images(folder, "train")
        images, labels = image_set.images.numpy(), image_set.labels.numpy()
        held_out = stratified_holdout(labels)
        data = (images[~held_out], labels[~held_out], images[held_out], labels[held_out])
        train, split = image_set, "holdout-1/6"
    _check_size(folder, data[0].shape)
    return LabelledData(folder.name, list(train.classes), *data, identity, split)


def check_labelled_folder(folder: Path) -> None:
    """Refuse a folder without class sub-folders (the classifier needs labels), in one line."""
    from difflab.data.folder import list_images

    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: no such folder and not a known data set; use fashion_mnist, mnist, "
            "cifar10 or a folder with one sub-folder of images per class."
        )
    _, _, classes = list_images(folder / "train" if (folder / "train").is_dir() else folder)
    if len(classes) < 2 or classes == [folder.name]:
        raise DatasetError(
            f"{folder}: unlabelled (no class sub-folders with images): the classifier needs "
            f"labels; sort the images into {folder}/<class>/*.png (at least 2 classes), or "
            "use fashion_mnist, mnist or cifar10."
        )


def _check_size(folder: Path, shape: tuple[int, ...]) -> None:
    if min(shape[2:]) < MIN_SIZE:
        raise DatasetError(
            f"{folder}: images are {shape[3]}x{shape[2]}; the classifier needs at least "
            f"{MIN_SIZE}x{MIN_SIZE}. Resize them."
        )


def stratified_holdout(labels: np.ndarray, fraction: float = HOLDOUT_FRACTION) -> np.ndarray:
    """Boolean mask of the held-out images: round(fraction x n_c) of each class c (>= 1 when
    the class has 2 or more images), chosen by a fixed seed."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, round(fraction * len(members))) if len(members) >= 2 else 0
        mask[rng.permutation(members)[:k]] = True
    return mask


def folder_manifest(folder: Path) -> list[dict[str, Any]]:
    """Relative path, size and sha256 of every file under `folder` (sorted); a symlink that
    leaves the folder is refused."""
    from difflab.files import sha256_file

    root = folder.resolve()
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise DatasetError(f"{path}: a symlink out of {folder}; copy the file in instead.")
        if path.is_file() and not path.name.startswith("."):
            rel = path.relative_to(folder).as_posix()
            entries.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
    return entries


def folder_manifest_sha256(folder: Path) -> str:
    blob = json.dumps(folder_manifest(folder), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
