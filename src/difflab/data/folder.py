"""A folder of PNG/JPEG images, optionally sorted into class sub-folders.

`folder/*.png` gives one class named after the folder; `folder/<class>/*.png` gives one class
per sub-folder (sorted by name). If `folder/<split>/` exists (train, test) it is used instead.
Every image must have the same size and mode; they are decoded once, here, into one array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab.data.errors import DatasetError

EXTENSIONS = {".png", ".jpg", ".jpeg"}
# Modes turned into the array's channels; palette and 1-bit images are converted first.
CONVERT = {"1": "L", "L": "L", "LA": "LA", "P": "RGB", "RGB": "RGB", "RGBA": "RGBA"}


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """(image paths, their labels, class names) of a folder, in a stable order."""
    top = sorted(p for p in folder.iterdir() if is_image(p))
    subs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    subs = [d for d in subs if any(is_image(p) for p in d.iterdir())]
    if top and subs:
        raise DatasetError(
            f"{folder}: has images at the top ({top[0].name}, ...) and class "
            f"sub-folders ({subs[0].name}, ...): keep one layout."
        )
    if top:
        return top, np.zeros(len(top), dtype=np.int64), [folder.name]
    if not subs:
        raise DatasetError(
            f"{folder}: holds no .png/.jpg/.jpeg images, directly or in class sub-folders."
        )
    paths, labels = [], []
    for label, sub in enumerate(subs):
        files = sorted(p for p in sub.iterdir() if is_image(p))
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), [d.name for d in subs]


def decode(path: Path) -> np.ndarray:
    """One image as uint8 (H, W, C)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            mode = CONVERT.get(img.mode)
            if mode is None:
                raise DatasetError(
                    f"{path}: image mode {img.mode} is not supported; save it "
                    "as 8-bit grayscale or RGB(A)."
                )
            array = np.asarray(img.convert(mode) if img.mode != mode else img)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"{path}: not a readable image ({err}).") from err
    return array[:, :, None] if array.ndim == 2 else array


def read_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str], Path]:
    """(images uint8 (N, C, H, W), labels, classes, folder read) of an image folder."""
    from tqdm.auto import tqdm

    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (and not a known data set name).")
    if (folder / split).is_dir():
        folder = folder / split
    elif split != "train":
        raise DatasetError(
            f"{folder}: has no {split}/ sub-folder; the folder itself is the train split."
        )
    paths, labels, classes = list_images(folder)
    first = decode(paths[0])
    images = np.empty((len(paths), first.shape[2], *first.shape[:2]), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc=f"reading {folder.name}", disable=len(paths) < 5000)):
        array = first if i == 0 else decode(path)
        if array.shape != first.shape:
            raise DatasetError(
                f"{path}: is {describe(array)} but {paths[0].name} is {describe(first)}: "
                "all images of a folder must share one size and mode. Resize or convert it."
            )
        images[i] = array.transpose(2, 0, 1)
    return images, labels, classes, folder


def describe(array: np.ndarray) -> str:
    h, w, c = array.shape
    return f"{w}x{h} with {c} channel{'s' if c > 1 else ''}"
