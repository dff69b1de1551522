"""Image output: PNG grids, `.npz` sample files, quick figures of diffusion processes.

Images are (N, C, H, W) or (N, H, W) arrays or tensors: uint8 as they are, floats mapped
linearly from `value_range=(low, high)` to 0..255 (clamped). Pillow writes the PNGs;
matplotlib is imported only by `show_images`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ValueRange = tuple[float, float]


def to_uint8_array(images: Any, *, value_range: ValueRange | None = None) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) uint8/float array or tensor -> uint8 (N, C, H, W) numpy array."""
    if hasattr(images, "detach"):  # a torch tensor (bf16 has no numpy form: go through float32)
        images = images.detach().cpu()
        arr = images.numpy() if str(images.dtype) == "torch.uint8" else images.float().numpy()
    else:
        arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if value_range is None:
        raise ValueError(
            "float images need value_range=(low, high), the values that map to black and white "
            "(difflab's data scaling default is (-0.5, 0.5))"
        )
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must have high > low, got {value_range}")
    scaled = (arr.astype(np.float64) - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def make_grid(
    images: Any,
    *,
    ncols: int | None = None,
    padding: int = 2,
    pad_value: int = 0,
    value_range: ValueRange | None = None,
) -> np.ndarray:
    """Tile images row by row into one uint8 (H, W, C) array; C is 1 or 3 (or 4)."""
    arr = to_uint8_array(images, value_range=value_range)
    n, c, h, w = arr.shape
    if n == 0:
        raise ValueError("no images to put in a grid")
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = np.full(
        (padding + nrows * (h + padding), padding + ncols * (w + padding), c),
        pad_value, dtype=np.uint8,
    )  # fmt: skip
    for k in range(n):
        top = padding + (k // ncols) * (h + padding)
        left = padding + (k % ncols) * (w + padding)
        grid[top : top + h, left : left + w] = arr[k].transpose(1, 2, 0)
    return grid


def save_grid(images: Any, path: str | Path, *, scale: int = 1, **grid_options: Any) -> Path:
    """Write images as one PNG grid (see `make_grid` for options); `scale` enlarges pixels."""
    from PIL import Image

    grid = make_grid(images, **grid_options)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid).save(path, format="PNG")
    return path


def save_samples_npz(path: str | Path, images: Any, *, labels: Any = None) -> Path:
    """Save uint8 samples (N, C, H, W) (and optional int labels) to a compressed `.npz`."""
    arr = to_uint8_array(images)  # floats are refused: samples are stored as the pixels they are
    arrays = {"images": arr}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
        if arrays["labels"].shape != (len(arr),):
            raise ValueError(f"labels must have shape ({len(arr)},), got {arrays['labels'].shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_samples_npz(path: str | Path, *, with_labels: bool = False):
    """Load uint8 (N, C, H, W) samples saved by `save_samples_npz` (never unpickles).

    With `with_labels=True` returns `(images, labels)`; labels is None when none were saved.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no sample file at {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # numpy would talk of pickles here
        raise ValueError(f"{path}: not a .npz file (no zip archive); write one with difflab sample")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data.files:
                found = data.files
                raise ValueError(
                    f"{path}: no 'images' array (found {found}); not a samples file: "
                    "write one with difflab sample"
                )
            images = data["images"]
            labels = data["labels"] if "labels" in data.files else None
    except Exception as err:  # damaged bytes reach zlib, zipfile and numpy's
        # header parser, which raise zlib.error, EOFError, NotImplementedError, TokenError...
        if isinstance(err, ValueError) and str(err).startswith(str(path)):
            raise
        # e.g. an object array: numpy's message would suggest allow_pickle=True (unsafe)
        raise ValueError(
            f"{path}: unreadable samples file ({_first_sentence(err)}); it is cut off or "
            "damaged: write it again with difflab sample"
        ) from err
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"{path}: expected uint8 (N, C, H, W), got {images.dtype} {images.shape}; "
            "difflab sample writes the pixels as uint8"
        )
    return (images, labels) if with_labels else images


def _first_sentence(err: Exception) -> str:
    text = str(err).split("\n")[0]
    return "holds pickled objects, never loaded" if "pickle" in text else text


def show_images(
    images: Any,
    *,
    ncols: int | None = None,
    titles: Sequence[str] | None = None,
    value_range: ValueRange | None = None,
    size: float = 1.5,
    return_fig: bool = False,
):
    """Show images in a matplotlib figure (notebooks); `return_fig=True` returns it unshown."""
    import matplotlib.pyplot as plt

    arr = to_uint8_array(images, value_range=value_range)
    n = len(arr)
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            img = arr[k].transpose(1, 2, 0)
            ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    if return_fig:
        return fig
    plt.show()
    return None


# --- Forward process q(x_t | x_0), Ho et al. 2020 eq. 4:
#   x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,  eps ~ N(0, I).
def forward_process_images(x0: Any, alpha_bar: Any, *, generator: Any = None):
    """(N, C, H, W) float x0 and K values alpha_bar_t -> (N, K, C, H, W) noisy images.

    The same eps is used at every t, so each row shows one image drowning in one noise.
    """
    import torch

    x0 = torch.as_tensor(x0, dtype=torch.float32)
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float32).reshape(1, -1, 1, 1, 1)
    if not bool(((alpha_bar >= 0) & (alpha_bar <= 1)).all()):
        raise ValueError("alpha_bar values must lie in [0, 1]")
    eps = torch.randn(x0.shape, generator=generator)[:, None]  # (N, 1, C, H, W)
    return alpha_bar.sqrt() * x0[:, None] + (1 - alpha_bar).sqrt() * eps


def save_forward_process(
    path: str | Path,
    x0: Any,
    alpha_bar: Any,
    *,
    value_range: ValueRange,
    generator: Any = None,
    scale: int = 2,
) -> Path:
    """PNG grid: one row per image, one column per alpha_bar_t (given, e.g. schedule at t)."""
    x_t = forward_process_images(x0, alpha_bar, generator=generator)  # (N, K, C, H, W)
    ncols = x_t.shape[1]
    return save_grid(x_t.flatten(0, 1), path, ncols=ncols, value_range=value_range, scale=scale)


def save_trajectory(
    path: str | Path, x0_hats: Sequence[Any], *, value_range: ValueRange, scale: int = 2
) -> Path:
    """PNG grid of a sampling trajectory: one row per image, one column per recorded step.

    `x0_hats` is a list over steps of (N, C, H, W) predictions (e.g. `StepInfo.x0_hat`).
    """
    if not x0_hats:
        raise ValueError("the trajectory is empty: record at least one step")
    steps = [to_uint8_array(x, value_range=value_range) for x in x0_hats]
    stacked = np.stack(steps, axis=1)  # (N, K, C, H, W)
    n, k = stacked.shape[:2]
    return save_grid(stacked.reshape(n * k, *stacked.shape[2:]), path, ncols=k, scale=scale)
