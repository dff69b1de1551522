"""Small labelled datasets drawn procedurally (no download): ten classes of shapes, grayscale or
RGB, as arrays or class folders of PNGs; and classifier flags that train on them in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_CLASSES = 10
TRAIN_FLAGS = [
    "--epochs",
    "6",
    "--batch-size",
    "32",
    "--widths",
    "8,16",
    "--lr",
    "2e-2",
    "--flip",
    "false",
]


def draw_shapes(n_per_class: int, *, size: int = 16, channels: int = 1, seed: int = 0):
    """Class c: a bright 4x4 square at the c-th of 10 fixed spots, jittered by up to 1 pixel,
    on noise (RGB: the square's colour also depends on c). uint8 (N, C, H, W), labels."""
    rng = np.random.default_rng(seed)
    spots = [(2 + 5 * (c // 4) * size // 16, 2 + 4 * (c % 4) * size // 16) for c in range(10)]
    images = rng.integers(0, 60, (N_CLASSES * n_per_class, channels, size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(N_CLASSES), n_per_class)
    for i, c in enumerate(labels):
        y, x = (v + int(rng.integers(-1, 2)) for v in spots[c])
        colour = [255, 120 + 13 * c, 255 - 20 * c][:channels]
        images[i, :, max(y, 0) : y + 4, max(x, 0) : x + 4] = np.array(colour)[:, None, None]
    return images, labels


def write_class_folder(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    from PIL import Image

    for i, (image, label) in enumerate(zip(images, labels)):
        sub = folder / f"class_{label}"
        sub.mkdir(parents=True, exist_ok=True)
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(array).save(sub / f"{i:04d}.png")
    return folder
