"""Every default of `difflab autoencoder train`: the first stage of latent diffusion.

Each field's help is its `--flag` help; the whole config is recorded in the run folder and in
the autoencoder's card (model.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from difflab.config.fields import choice, option, positive, require

AUTOENCODER_PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class AutoencoderConfig:
    """One autoencoder training run."""

    dataset: str = option("fashion_mnist", "fashion_mnist, mnist, cifar10, or a folder of images")
    root: str | None = option(None, "folder holding the dataset files (else DIFFLAB_DATA, caches)")
    limit: int | None = option(None, "use only the first N training images (quick runs, tests)")
    low: float = option(-0.5, "pixel value that black maps to (the diffusion data range)")
    high: float = option(0.5, "pixel value that white maps to")
    downsample: int = option(
        4, "spatial downsampling factor f (1, 2, 4 or 8): 28x28 images -> 7x7 latents at f=4"
    )
    latent_channels: int = option(4, "channels of the latent (Rombach et al. 2022 use 3-4)")
    width: int = option(32, "encoder/decoder channels at full resolution (x2 per level, max x4)")
    kl_weight: float = option(
        1e-4,
        "weight of the KL term per latent element (Rombach et al. 2022: 'slight', ~1e-6 beside a "
        "perceptual loss); larger: smoother latents, blurrier reconstructions",
    )
    perceptual_weight: float = option(
        0.0,
        "weight of a perceptual term: MSE between the dataset's feature-model features of x and "
        "of its reconstruction (needs `difflab classifier train` for non-FMNIST data; 0: off)",
    )
    epochs: int = option(10, "passes over the training images (a cap under --minutes)")
    minutes: float = option(0.0, "stop after this many minutes of training (0: off)")
    batch_size: int = option(64, "images per optimiser step")
    lr: float = option(2e-3, "peak learning rate of the one-cycle schedule (AdamW)")
    warmup: float = option(0.1, "fraction of the steps spent warming the learning rate up")
    weight_decay: float = option(0.0, "AdamW weight decay")
    mixed_precision: str = option(
        "no", "no, bf16 or fp16 (GPU); bf16 was 2x slower than fp32 on a CPU without native bf16"
    )
    checkpoint_every: int = option(500, "save a resumable checkpoint every N steps (0: epochs)")
    seed: int = option(0, "seed of weights, data order and posterior samples")
    threads: int | None = option(
        None,
        "torch CPU threads (None: torch's default, all cores); 1 helps when other jobs hold the "
        "cores (a two-thread step waits for its slower thread)",
    )
    recon_n: int = option(
        2048, "images whose reconstructions are measured (MSE and FID, as FMNIST-FID's n)"
    )

    def __post_init__(self) -> None:
        require(bool(self.dataset.strip()), "--dataset", "must not be empty")
        require(self.limit is None or self.limit > 0, "--limit", "must be > 0")
        require(math.isfinite(self.low) and math.isfinite(self.high), "--low", "must be finite")
        require(self.high > self.low, "--high", "must be greater than --low")
        require(self.downsample in (1, 2, 4, 8), "--downsample", "must be 1, 2, 4 or 8")
        require(self.latent_channels >= 1, "--latent-channels", "must be >= 1")
        require(self.width >= 4, "--width", "must be >= 4")
        require(
            math.isfinite(self.kl_weight) and self.kl_weight >= 0, "--kl-weight", "must be >= 0"
        )
        require(
            math.isfinite(self.perceptual_weight) and self.perceptual_weight >= 0,
            "--perceptual-weight",
            "must be >= 0",
        )
        require(self.epochs >= 1, "--epochs", "must be >= 1")
        require(
            math.isfinite(self.minutes) and self.minutes >= 0, "--minutes", "must be >= 0 (0: off)"
        )
        require(self.batch_size >= 2, "--batch-size", "must be >= 2")
        positive(self.lr, "--lr")
        require(0.0 <= self.warmup < 1.0, "--warmup", "must be in [0, 1)")
        require(self.weight_decay >= 0, "--weight-decay", "must be >= 0")
        choice(self.mixed_precision, AUTOENCODER_PRECISIONS, "--mixed-precision")
        require(self.checkpoint_every >= 0, "--checkpoint-every", "must be >= 0")
        require(self.seed >= 0, "--seed", "must be >= 0")
        require(self.threads is None or self.threads >= 1, "--threads", "must be >= 1")
        require(self.recon_n >= 2, "--recon-n", "must be >= 2")
