"""An autoencoder as a file, and the codec that latent diffusion encodes and decodes with.

Format "difflab-autoencoder/1": a folder holding `model.safetensors` (the weights) beside
`model.json`, the autoencoder's card: `autoencoder` (the architecture, with its `kind`),
`scale_factor` (1 / std of the training latents, Rombach et al. 2022's 0.18215-style constant),
`image_shape`, `latent_shape`, the data range `low`/`high`, the reconstruction MSE and FID,
the training config, and `weights_sha256`.

A latent diffusion model's model.json records under `autoencoder` the path and sha256 of the
autoencoder it was trained on (`codec.record()`); `codec_for_record` refuses a missing or
changed one in one line that names the file and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from difflab.io.model_file import load_model_file, resolve_model_path, save_model
from difflab.models.autoencoder import Autoencoder

AUTOENCODER_FORMAT = "difflab-autoencoder/1"


@dataclass(frozen=True)
class LatentCodec:
    """A trained autoencoder and its scale factor: images <-> scaled latents."""

    model: Autoencoder
    scale_factor: float
    low: float
    high: float
    path: str  # the folder it was loaded from (absolute)
    weights_sha256: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.arch.image_shape)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.model.arch.latent_shape

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [low, high] -> scale_factor * mu: the posterior means, scaled."""
        device = next(self.model.parameters()).device
        return self.model.encode(x.to(device))[0] * self.scale_factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> float32 images in the data range (not clamped)."""
        self.model.to(z.device)
        return self.model.decode(z.float() / self.scale_factor).float()

    def record(self) -> dict[str, Any]:
        """What a latent model's model.json records about the autoencoder it needs."""
        return {
            "path": self.path,
            "weights_sha256": self.weights_sha256,
            "scale_factor": self.scale_factor,
            "image_shape": list(self.image_shape),
            "latent_shape": list(self.latent_shape),
        }


def save_autoencoder(folder: str | Path, model: Autoencoder, card: dict[str, Any]) -> Path:
    """model.safetensors + model.json (the card, with the architecture) into `folder`."""
    meta = {**card, "format": AUTOENCODER_FORMAT, "autoencoder": model.config()}
    meta.setdefault("image_shape", list(model.arch.image_shape))
    meta.setdefault("latent_shape", list(model.arch.latent_shape))
    return save_model(folder, model.state_dict(), meta)


def load_autoencoder(path: str | Path, *, device: str | torch.device = "cpu") -> LatentCodec:
    """An autoencoder folder (or its model.safetensors) -> a LatentCodec in eval mode."""
    state, meta = load_model_file(path)
    where = f"{resolve_model_path(path)[1]}"
    if not isinstance(meta, dict) or meta.get("format") != AUTOENCODER_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(
            f"{where}: format is {found!r}, expected {AUTOENCODER_FORMAT!r}: pass a folder "
            "written by `difflab autoencoder train`"
        )
    for key, kinds in (("autoencoder", dict), ("scale_factor", (int, float)),
                       ("low", (int, float)), ("high", (int, float))):  # fmt: skip
        if not isinstance(meta.get(key), kinds):
            raise ValueError(f"{where}: field {key!r} is missing or of the wrong type")
    try:
        model = Autoencoder.from_config(meta["autoencoder"])
        model.load_state_dict(state)
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{where}: the weights do not fit 'autoencoder' ({first})") from err
    folder = os.path.abspath(resolve_model_path(path)[0].parent)
    model.to(device).eval()
    return LatentCodec(
        model, float(meta["scale_factor"]), float(meta["low"]), float(meta["high"]), folder,
        str(meta.get("weights_sha256", "")),
    )  # fmt: skip


def codec_for_record(record: Any, where: str) -> LatentCodec:
    """The autoencoder a latent model.json names, refused in one line if it is missing,
    changed (another sha256) or of another shape than the model was trained on."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        raise ValueError(f"{where}: field 'autoencoder' must be an object with a 'path'")
    path = record["path"]
    fix = f"put that autoencoder back at {path}, or retrain with `difflab train --latent PATH`"
    if not (Path(path) / "model.safetensors").is_file():
        raise ValueError(
            f"{where}: this latent model needs its autoencoder {path}, which is missing; {fix}"
        )
    codec = load_autoencoder(path)
    if codec.weights_sha256 != record.get("weights_sha256"):
        raise ValueError(
            f"{where}: the autoencoder {path} has changed since training (sha256 "
            f"{codec.weights_sha256[:12]}, expected {str(record.get('weights_sha256'))[:12]}); {fix}"
        )
    if list(codec.latent_shape) != list(record.get("latent_shape", codec.latent_shape)):
        raise ValueError(f"{where}: the autoencoder {path} makes latents of another shape; {fix}")
    # the scale the diffusion model was trained with wins over a re-measured one
    scale = float(record.get("scale_factor", codec.scale_factor))
    return LatentCodec(codec.model, scale, codec.low, codec.high, codec.path, codec.weights_sha256)
