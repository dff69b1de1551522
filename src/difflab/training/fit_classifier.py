"""Train the feature classifier behind domain FID/KID with the Learner, for any labelled data.

The objective is cross-entropy with label smoothing (Szegedy et al. 2016, sec. 7), passed to
the Learner like the diffusion objective; the callbacks are the usual ones: Accelerate (bf16
autocast on CPU), one-cycle LR (Smith & Topin 2019), loss metrics, progress, plus batched
on-the-fly augmentation (random crop with padding, horizontal flip, random erasing, Zhong et
al. 2020). The test split is only evaluated at the end, never used to select.

    difflab classifier train --dataset fashion_mnist      # -> <cache>/feature-models/<id>/
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difflab.config.classifier import ClassifierConfig
from difflab.metrics.real_data import LabelledData, data_checksum, load_labelled
from difflab.models.classifier import ImageClassifier
from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

log = logging.getLogger(__name__)


# --- augmentation (batched, on tensors already in [low, high]) -----------------------------------


def random_crop(x: Tensor, pad: int, *, fill: float, generator: torch.Generator) -> Tensor:
    """Pad by `pad` pixels of `fill`, then crop each image back at its own random offset."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), value=fill).permute(0, 2, 3, 1)  # (B, H+2p, W+2p, C)
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
    return xp[torch.arange(b)[:, None, None], rows, cols].permute(0, 3, 1, 2)


def random_flip(x: Tensor, *, generator: torch.Generator) -> Tensor:
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_erase(
    x: Tensor, p: float, *, low: float, high: float, generator: torch.Generator
) -> Tensor:
    """Random erasing (Zhong et al. 2020): with probability p, one rectangle with sides between
    1/8 and 1/2 of the image's is replaced by uniform noise in [low, high]."""
    b, _, h, w = x.shape
    eh = torch.randint(h // 8, h // 2 + 1, (b,), generator=generator)
    ew = torch.randint(w // 8, w // 2 + 1, (b,), generator=generator)
    y0 = (torch.rand(b, generator=generator) * (h - eh + 1)).long()
    x0 = (torch.rand(b, generator=generator) * (w - ew + 1)).long()
    ys, xs = torch.arange(h), torch.arange(w)
    in_rows = (ys[None] >= y0[:, None]) & (ys[None] < (y0 + eh)[:, None])  # (B, H)
    in_cols = (xs[None] >= x0[:, None]) & (xs[None] < (x0 + ew)[:, None])  # (B, W)
    chosen = torch.rand(b, generator=generator) < p
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None])[:, None]
    noise = torch.rand(x.shape, generator=generator) * (high - low) + low
    return torch.where(mask, noise, x)


def augment(x: Tensor, config: ClassifierConfig, generator: torch.Generator) -> Tensor:
    if config.crop_pad > 0:
        x = random_crop(x, config.crop_pad, fill=config.low, generator=generator)
    if config.flip:
        x = random_flip(x, generator=generator)
    if config.erase_p > 0:
        x = random_erase(x, config.erase_p, low=config.low, high=config.high, generator=generator)
    return x.contiguous(memory_format=torch.channels_last)


class AugmentCB(Callback):
    """Replaces each training batch's images by an augmented copy (labels untouched)."""

    order = -50  # before the batch moves to the device: the generator lives on the CPU

    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config
        self.generator = torch.Generator().manual_seed(config.seed)

    def before_batch(self, learn: Learner) -> None:
        if learn.training:
            x, y = learn.batch
            learn.batch = (augment(x, self.config, self.generator), y)


class EpochLogCB(Callback):
    """Keeps each epoch's mean training loss and the seconds since the fit began."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self._start = 0.0

    def before_fit(self, learn: Learner) -> None:
        self._start = time.perf_counter()

    def on_report(self, learn: Learner, name: str, value: float, step: int) -> None:
        if name == "epoch/train_loss":
            seconds = round(time.perf_counter() - self._start, 1)
            self.history.append({"epoch": learn.epoch, "train_loss": value, "seconds": seconds})
            log.info("epoch %d: train loss %.4f (%.0f s)", learn.epoch, value, seconds)


# --- objective and accuracy -----------------------------------------------------------------


def cross_entropy_objective(label_smoothing: float = 0.0) -> Callable[[nn.Module, Any], Tensor]:
    """objective(model, (x, y)) -> mean cross-entropy of the logits (in float32) against y."""

    def objective(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x).float(), y, label_smoothing=label_smoothing)

    return objective


@torch.inference_mode()
def evaluate_accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy in float32 (eval mode), restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size].contiguous(memory_format=torch.channels_last))
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


# --- training ---------------------------------------------------------------------------------


def limited(data: LabelledData, config: ClassifierConfig) -> LabelledData:
    """The data with --limit / --test-limit applied (identity unchanged: it names the source)."""
    from dataclasses import replace

    return replace(
        data,
        train_images=data.train_images[: config.limit],
        train_labels=data.train_labels[: config.limit],
        test_images=data.test_images[: config.test_limit],
        test_labels=data.test_labels[: config.test_limit],
    )


def build_classifier(config: ClassifierConfig, data: LabelledData) -> ImageClassifier:
    """The ResNet for this data's channel count and classes (any image size: global pooling)."""
    torch.manual_seed(config.seed)
    model = ImageClassifier(
        in_channels=data.image_shape[0],
        n_classes=len(data.classes),
        widths=config.widths,
        dropout=config.dropout,
        stem_stride=config.stem_stride,
    )
    return model.to(memory_format=torch.channels_last)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch CPU threads (None: unchanged), then restore the count."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_classifier(
    config: ClassifierConfig, *, data: LabelledData | None = None, progress: bool = True
) -> tuple[ImageClassifier, dict[str, Any], LabelledData]:
    """Train with the Learner (on `config.threads` CPU threads); returns the model (eval mode,
    CPU), a JSON-able record of the run and the (limited) data it used."""
    with torch_threads(config.threads):
        return _fit(config, data, progress)


def _fit(config, data, progress):
    from functools import partial

    from difflab.data import InMemoryBatches
    from difflab.training.callbacks import AccelerateCB, LRScheduleCB, MetricsCB, ProgressCB
    from difflab.training.learner import Learner

    start = time.perf_counter()
    data = limited(data if data is not None else load_labelled(config.dataset, config.root), config)
    batches = InMemoryBatches(
        data.train_images,
        data.train_labels,
        batch_size=min(config.batch_size, len(data.train_images)),
        low=config.low,
        high=config.high,
        seed=config.seed,
    )
    model = build_classifier(config, data)
    history = EpochLogCB()
    callbacks = [
        AccelerateCB(mixed_precision=config.mixed_precision),
        LRScheduleCB("onecycle", warmup=config.warmup),
        MetricsCB(),
        AugmentCB(config),
        ProgressCB(tty=None if progress else False),
        history,
    ]
    optimizer = partial(torch.optim.AdamW, weight_decay=config.weight_decay)
    learn = Learner(
        model,
        batches,
        cross_entropy_objective(config.label_smoothing),
        lr=config.lr,
        optimizer=optimizer,
        callbacks=callbacks,
        config=asdict(config),
    )
    learn.fit(config.epochs)
    model = learn.unwrapped_model().cpu().eval()
    x_test = torch.from_numpy(data.test_images).float() * ((config.high - config.low) / 255.0)
    accuracy = evaluate_accuracy(model, x_test + config.low, torch.from_numpy(data.test_labels))
    log.info("test accuracy %.4f (%d images)", accuracy, len(x_test))
    return model, _record(config, data, accuracy, history.history, start), data


def _record(config, data, accuracy, history, start) -> dict[str, Any]:
    return {
        "test_accuracy": accuracy,
        "train_seconds": round(time.perf_counter() - start, 1),
        "data_sha256": {
            "train": data_checksum(data.train_images, data.train_labels),
            "test": data_checksum(data.test_images, data.test_labels),
        },
        "n_train": len(data.train_images),
        "n_test": len(data.test_images),
        "history": history,
        "train_config": asdict(config),
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
    }


def train_feature_model(
    config: ClassifierConfig,
    *,
    registry: str | None = None,
    out: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, then write weights + card + reference statistics into the registry (or `out`);
    returns the card."""
    from difflab.metrics.feature_models import save_feature_model

    with torch_threads(config.threads):
        model, record, data = fit_classifier(config, progress=progress)
        card = save_feature_model(
            model, record, data, registry=registry, out=out, progress=progress
        )
    return card
