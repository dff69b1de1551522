"""Every default of `difflab classifier train`: the feature classifier behind domain FID/KID.

The defaults are a fast CPU recipe (Fashion-MNIST, one thread of a shared 2-core machine:
92.1% test accuracy in 4m15s with crop 2 + dropout 0.1, 92.6% with crop 1 + no dropout, the
defaults; the shipped model's 93.65% took 34.5 minutes). Each field's help is its `--flag` help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from difflab.config.fields import choice, option, positive, require

CLASSIFIER_PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class ClassifierConfig:
    """One classifier training run (recorded whole in the feature model's card)."""

    dataset: str = option(
        "fashion_mnist",
        "fashion_mnist, mnist, cifar10, or a folder with one sub-folder of images per class",
    )
    root: str | None = option(None, "folder holding the dataset files (else DIFFLAB_DATA, caches)")
    epochs: int = option(7, "passes over the training images")
    batch_size: int = option(256, "images per optimiser step")
    lr: float = option(1e-2, "peak learning rate of the one-cycle schedule (AdamW)")
    warmup: float = option(0.25, "fraction of the steps spent warming the learning rate up")
    weight_decay: float = option(1e-2, "AdamW weight decay")
    label_smoothing: float = option(0.1, "cross-entropy label smoothing (Szegedy et al. 2016)")
    crop_pad: int = option(1, "random-crop augmentation: pixels of padding (0: off)")
    flip: bool = option(True, "random horizontal flips (false for digits and text)")
    erase_p: float = option(0.0, "random-erasing probability (Zhong et al. 2020; 0: off)")
    widths: tuple[int, ...] = option(
        (16, 32, 64, 128),
        "channels of the ResNet stages, comma-separated (last: feature dimension)",
    )
    stem_stride: int = option(2, "1 or 2: the stem halves the resolution (2: ~4x less compute)")
    dropout: float = option(0.0, "dropout before the classification head")
    low: float = option(-0.5, "pixel value that black maps to (the diffusion data range)")
    high: float = option(0.5, "pixel value that white maps to")
    mixed_precision: str = option(
        "no", "no, bf16 or fp16 (GPU); bf16 was 3x slower on a CPU without native bf16"
    )
    seed: int = option(0, "seed of weights, data order and augmentation")
    threads: int | None = option(
        1,
        "torch CPU threads (None: torch's default); 2 threads ran ~10x slower than 1 on a "
        "2-core machine while another process held a core",
    )
    limit: int | None = option(None, "use only the first N training images (quick runs, tests)")
    test_limit: int | None = option(None, "use only the first N test images (tests)")

    def __post_init__(self) -> None:
        require(bool(self.dataset.strip()), "--dataset", "must not be empty")
        require(self.epochs >= 1, "--epochs", f"must be >= 1, got {self.epochs}")
        require(self.batch_size >= 2, "--batch-size", f"must be >= 2, got {self.batch_size}")
        positive(self.lr, "--lr")
        require(0.0 < self.warmup < 1.0, "--warmup", f"must be in (0, 1), got {self.warmup}")
        require(self.weight_decay >= 0, "--weight-decay", "must be >= 0")
        require(0.0 <= self.label_smoothing < 1.0, "--label-smoothing", "must be in [0, 1)")
        require(self.crop_pad >= 0, "--crop-pad", "must be >= 0")
        require(0.0 <= self.erase_p <= 1.0, "--erase-p", "must be in [0, 1]")
        require(
            len(self.widths) > 0 and all(w > 0 for w in self.widths),
            "--widths",
            f"must be positive channel counts such as 32,64,128, got {self.widths!r}",
        )
        require(self.stem_stride in (1, 2), "--stem-stride", "must be 1 or 2")
        require(0.0 <= self.dropout < 1.0, "--dropout", "must be in [0, 1)")
        require(math.isfinite(self.low) and math.isfinite(self.high), "--low", "must be finite")
        require(self.high > self.low, "--high", "must be greater than --low")
        choice(self.mixed_precision, CLASSIFIER_PRECISIONS, "--mixed-precision")
        require(
            self.limit is None or self.limit >= self.batch_size,
            "--limit",
            f"must be >= --batch-size ({self.batch_size})",
        )
        require(self.threads is None or self.threads >= 1, "--threads", "must be >= 1")
        require(self.test_limit is None or self.test_limit >= 2, "--test-limit", "must be >= 2")
