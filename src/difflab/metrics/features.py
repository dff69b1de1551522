"""Feature extraction for FID/KID: the pooled output of a named layer, read by a forward hook.

Metrics never build a Learner: a plain batched `torch.inference_mode()` loop over the images.
Images come as uint8 (N, C, H, W) arrays/tensors (scaled to the model's data range here) or as
float tensors already in that range (generated samples; clamped to it, as writing them to PNG
would).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def to_model_input(images: Any, *, low: float, high: float) -> Tensor:
    """uint8 images -> float32 in [low, high]; float images are clamped to [low, high]."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float().mul_((high - low) / 255.0).add_(low)
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 or float, got dtype {x.dtype}")
    return x.float().clamp(low, high)


def _hook_output(model: nn.Module, layer: str) -> tuple[Callable[[], Tensor], Any]:
    try:
        module = model.get_submodule(layer)
    except AttributeError as err:
        names = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"model has no layer {layer!r}; layers: {names[:20]}...") from err
    store: dict[str, Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
        store["out"] = output

    handle = module.register_forward_hook(hook)
    return (lambda: store.pop("out")), handle


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    images: Any,
    *,
    layer: str = "pool",
    low: float = -0.5,
    high: float = 0.5,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Tensor:
    """Pooled features (N, D) float32 of `images` at `layer` (flattened per image).

    Images go to `device` (default: where the model's weights are), features come back on the CPU.
    """
    device = device if device is not None else next(model.parameters()).device
    n = len(images)
    if n == 0:
        raise ValueError("no images to extract features from")
    take, handle = _hook_output(model, layer)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        starts = range(0, n, batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="features", unit="batch", leave=False)
        for start in starts:
            x = to_model_input(images[start : start + batch_size], low=low, high=high)
            model(x.to(device))
            chunks.append(take().flatten(1).float().cpu())
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(chunks)


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) in float64, as pytorch-fid's np.cov(rowvar=False)."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {tuple(f.shape)}")
    mu = f.mean(dim=0)
    centred = f - mu
    sigma = centred.T @ centred / (f.shape[0] - 1)
    return mu.numpy(), sigma.numpy()


@torch.inference_mode()
def predict_labels(
    model: nn.Module, images: Any, *, low: float, high: float, batch_size: int = 500
) -> Tensor:
    """The classifier's predicted class (N,) int64 of uint8 images (its forward gives logits)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = [
            model(to_model_input(images[i : i + batch_size], low=low, high=high).to(device))
            .argmax(dim=1)
            .cpu()
            for i in range(0, len(images), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)
