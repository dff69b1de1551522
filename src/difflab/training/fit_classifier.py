"""Train the Fashion-MNIST feature classifier that difflab's FID/KID use, and write its assets.

Recipe: AdamW with a one-cycle learning rate (Smith & Topin 2019), bf16 autocast on CPU,
label smoothing 0.1 (Szegedy et al. 2016, sec. 7), and batched on-the-fly augmentation:
random crop with padding, horizontal flip and random erasing (Zhong et al. 2020).
The test split is only evaluated (per-epoch log, final accuracy), never used to select.

Rebuild the shipped assets with one command:
    difflab classifier train --dataset fashion_mnist --out src/difflab/assets
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from difflab.files import atomic_write_bytes, sha256_file
from difflab.metrics.real_data import data_checksum, load_split
from difflab.models.classifier import FEATURE_LAYER, FashionClassifier

log = logging.getLogger(__name__)

WEIGHTS_NAME = "fmnist_classifier.safetensors"
META_NAME = "fmnist_classifier.json"
STATS_NAME = "fmnist_test_stats.safetensors"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """Everything that defines a classifier training run (recorded in the JSON)."""

    dataset: str = "fashion_mnist"
    root: str | None = None
    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    crop_pad: int = 2
    erase_p: float = 0.25
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropout: float = 0.1
    low: float = -0.5
    high: float = 0.5
    precision: Literal["bf16", "no"] = "bf16"
    seed: int = 0
    limit: int | None = None  # first N training images only (smoke runs, tests)
    test_limit: int | None = None  # first N test images for accuracy and statistics (tests)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"--batch-size must be >= 2, got {self.batch_size}")
        if self.precision not in ("bf16", "no"):
            raise ValueError(f"--precision must be bf16 or no, got {self.precision!r}")
        if self.limit is not None and self.limit < self.batch_size:
            raise ValueError(f"--limit must be >= --batch-size ({self.batch_size})")


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


def augment(x: Tensor, config: ClassifierTrainConfig, generator: torch.Generator) -> Tensor:
    if config.crop_pad > 0:
        x = random_crop(x, config.crop_pad, fill=config.low, generator=generator)
    x = random_flip(x, generator=generator)
    if config.erase_p > 0:
        x = random_erase(x, config.erase_p, low=config.low, high=config.high, generator=generator)
    return x.contiguous(memory_format=torch.channels_last)


# --- training ---------------------------------------------------------------------------------


def _scale(images: np.ndarray, config: ClassifierTrainConfig) -> Tensor:
    x = torch.from_numpy(np.array(images, dtype=np.float32))
    return x.mul_((config.high - config.low) / 255.0).add_(config.low)


@torch.inference_mode()
def evaluate_accuracy(
    model: FashionClassifier, x: Tensor, y: Tensor, *, batch_size: int = 1000
) -> float:
    """Top-1 accuracy in float32 (eval mode), restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size].contiguous(memory_format=torch.channels_last))
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


def _train_epoch(model, x, y, optimizer, scheduler, config, generator, bar) -> tuple[float, float]:
    model.train()
    order = torch.randperm(len(x), generator=generator)
    n_batches = len(x) // config.batch_size  # drop_last: BatchNorm sees full batches
    total_loss, correct = 0.0, 0
    for k in range(n_batches):
        idx = order[k * config.batch_size : (k + 1) * config.batch_size]
        xb, yb = augment(x[idx], config, generator), y[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += float(loss.detach())
        correct += int((logits.argmax(1) == yb).sum())
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss / (k + 1):.3f}")
    return total_loss / n_batches, correct / (n_batches * config.batch_size)


def fit_classifier(
    config: ClassifierTrainConfig, *, progress: bool = True
) -> tuple[FashionClassifier, dict[str, Any]]:
    """Train the classifier; returns it (eval mode) and a JSON-able record of the run."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    train_images, train_labels = load_split(config.dataset, "train", config.root)
    test_images, test_labels = load_split(config.dataset, "test", config.root)
    checksums = {
        "train": data_checksum(train_images, train_labels),
        "test": data_checksum(test_images, test_labels),
    }
    train_images, train_labels = train_images[: config.limit], train_labels[: config.limit]
    test_images, test_labels = test_images[: config.test_limit], test_labels[: config.test_limit]
    x, y = _scale(train_images, config), torch.from_numpy(train_labels)
    x_test, y_test = _scale(test_images, config), torch.from_numpy(test_labels)

    model = FashionClassifier(
        in_channels=x.shape[1],
        n_classes=int(y.max()) + 1,
        widths=config.widths,
        dropout=config.dropout,
    ).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    steps_per_epoch = len(x) // config.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.25
    )
    generator = torch.Generator().manual_seed(config.seed)
    history, start = [], time.perf_counter()
    with tqdm(
        total=config.epochs * steps_per_epoch, desc="classifier", disable=not progress
    ) as bar:
        for epoch in range(config.epochs):
            loss, acc = _train_epoch(model, x, y, optimizer, scheduler, config, generator, bar)
            last = epoch == config.epochs - 1
            # The test split is only logged (every 4th epoch and the last), never used to select.
            test_acc = evaluate_accuracy(model, x_test, y_test) if last or epoch % 4 == 3 else None
            elapsed = time.perf_counter() - start
            row = {"epoch": epoch, "train_loss": loss, "train_acc": acc, "test_acc": test_acc}
            history.append(dict(row, seconds=round(elapsed, 1)))
            log.info("epoch %d: %s (%.0f s)", epoch, row, elapsed)
    model.eval()
    record = {
        "test_accuracy": history[-1]["test_acc"],
        "train_seconds": round(time.perf_counter() - start, 1),
        "data_sha256": checksums,
        "n_train": len(x),
        "n_test": len(x_test),
        "history": history,
        "train_config": asdict(config),
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
    }
    return model, record


# --- assets -----------------------------------------------------------------------------------


def save_classifier_assets(
    model: FashionClassifier, record: dict[str, Any], out_dir: str | Path, *, progress: bool = True
) -> dict[str, Any]:
    """Write weights (safetensors), test-set reference statistics and the JSON that ties them.

    Returns the JSON written. The JSON carries the sha256 of both binary files so loaders can
    verify them.
    """
    from safetensors.torch import save

    from difflab.metrics.features import extract_features, feature_statistics
    from difflab.metrics.reference import save_reference_stats

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(memory_format=torch.contiguous_format).eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / WEIGHTS_NAME, save(state))
    weights_sha = sha256_file(out / WEIGHTS_NAME)
    config = record["train_config"]
    preprocessing = {
        "low": config["low"],
        "high": config["high"],
        "pad": 0,
        "height": 28,
        "width": 28,
        "channels": model.config()["in_channels"],
    }

    test_images, _ = load_split(config["dataset"], "test", config["root"])
    test_images = test_images[: config["test_limit"]]
    features = extract_features(
        model,
        test_images,
        layer=FEATURE_LAYER,
        low=config["low"],
        high=config["high"],
        progress=progress,
    )
    mu, sigma = feature_statistics(features)
    stats_meta = {
        "dataset": config["dataset"],
        "split": "test",
        "n": len(test_images),
        "feature_weights_sha256": weights_sha,
        "layer": FEATURE_LAYER,
        "preprocessing": preprocessing,
    }
    save_reference_stats(out / STATS_NAME, mu, sigma, meta=stats_meta)

    meta = {
        "architecture": "difflab.models.classifier.FashionClassifier",
        "config": model.config(),
        "feature_layer": FEATURE_LAYER,
        "feature_dim": model.feature_dim,
        "preprocessing": preprocessing,
        "dataset": config["dataset"],
        "classes": list(FASHION_MNIST_CLASSES),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": weights_sha,
        "reference_stats": {
            "file": STATS_NAME,
            "sha256": sha256_file(out / STATS_NAME),
            "split": "test",
            "n": len(test_images),
        },
        "rebuild": f"difflab classifier train --dataset {config['dataset']} --out {out}",
        **record,
    }
    atomic_write_bytes(out / META_NAME, (json.dumps(meta, indent=2) + "\n").encode())
    return meta
