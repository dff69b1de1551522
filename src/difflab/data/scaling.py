"""uint8 pixels <-> floats in [low, high], exact inverses on the uint8 grid."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def as_uint8_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A uint8 tensor view (or copy, for read-only arrays) of `images`."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images if images.flags.writeable else images.copy())
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
    return images


def scale_images(
    images: np.ndarray | torch.Tensor, low: float = -0.5, high: float = 0.5, pad: int = 0
) -> torch.Tensor:
    """uint8 (..., H, W) -> float32 (..., H + 2 pad, W + 2 pad) with 0 -> low and 255 -> high.

    Padding is black (`low`), as if the uint8 image had been padded with zeros.
    """
    if not high > low:
        raise ValueError(f"high ({high}) must be greater than low ({low})")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    x = as_uint8_tensor(images).to(torch.float32)
    x.mul_((high - low) / 255.0).add_(low)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), value=low)
    return x


def crop_padding(x: torch.Tensor, pad: int) -> torch.Tensor:
    """(..., H + 2 pad, W + 2 pad) -> (..., H, W): undoes `scale_images(..., pad=pad)`'s border."""
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    return x[..., pad:-pad, pad:-pad] if pad else x


def to_uint8(x: torch.Tensor, low: float = -0.5, high: float = 0.5) -> torch.Tensor:
    """float [low, high] -> uint8 0..255, rounded to the nearest level and clamped."""
    if not high > low:
        raise ValueError(f"high ({high}) must be greater than low ({low})")
    y = (x.detach().to(torch.float32) - low) * (255.0 / (high - low))
    return y.round_().clamp_(0, 255).to(torch.uint8)
