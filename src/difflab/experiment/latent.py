"""Latent diffusion's data: a dataset encoded once by the autoencoder, cached in memory.

Rombach et al. 2022 (sec. 3-4) train the diffusion model on z = scale_factor * E(x); here z is
the posterior mean of the KL autoencoder (deterministic, so the latents, and a resumed run's
batches, are the same every time the data is built).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from difflab.config import RunConfig
from difflab.io.autoencoder import LatentCodec, load_autoencoder

log = logging.getLogger("difflab")

ENCODE_BATCH = 512


def latent_codec(config: RunConfig) -> LatentCodec | None:
    """The autoencoder named by --data.latent (None: pixel space), refused when its data range
    is not the run's: the latents would encode other pixel values than the decoder gives back."""
    d = config.data
    if d.latent is None:
        return None
    if not Path(d.latent).is_dir():
        raise ValueError(
            f"--data.latent: {d.latent} is not a folder; make one with `difflab autoencoder "
            f"train --dataset {d.dataset} --out {d.latent}`"
        )
    codec = load_autoencoder(d.latent)
    if (codec.low, codec.high) != (d.low, d.high):
        raise ValueError(
            f"--data.low/--data.high: the autoencoder {d.latent} was trained on the range "
            f"[{codec.low:g}, {codec.high:g}], this run uses [{d.low:g}, {d.high:g}]; pass "
            f"--data.low {codec.low:g} --data.high {codec.high:g}"
        )
    return codec


def encode_images(
    codec: LatentCodec, images: np.ndarray | torch.Tensor, *, what: str
) -> torch.Tensor:
    """uint8 (N, C, H, W) -> scaled latents (N, c, h, w) float32 on the CPU, in batches."""
    from difflab.data.scaling import as_uint8_tensor, scale_images

    images = as_uint8_tensor(images)
    if tuple(images.shape[1:]) != codec.image_shape:
        raise ValueError(
            f"--data.latent: the autoencoder {codec.path} encodes {codec.image_shape} images, "
            f"the dataset holds {tuple(images.shape[1:])}: train one on this dataset"
        )
    start, chunks = time.perf_counter(), []
    for i in range(0, len(images), ENCODE_BATCH):
        x = scale_images(images[i : i + ENCODE_BATCH], codec.low, codec.high)
        chunks.append(codec.encode(x).cpu())
        if (i // ENCODE_BATCH) % 20 == 19:
            log.info("encoding %s: %d/%d images", what, i + len(x), len(images))
    latents = torch.cat(chunks)
    log.info(
        "encoded %d %s images into %s latents in %.1f s (std %.3f after scaling)",
        len(images), what, "x".join(map(str, latents.shape[1:])), time.perf_counter() - start,
        float(latents.std()),
    )  # fmt: skip
    return latents
