"""Named starting points (`--preset NAME`): dotted overrides on top of the defaults in schema.py."""

from __future__ import annotations

from typing import Any

# Named starting points. Each is a set of dotted overrides on top of the defaults above.
PRESETS: dict[str, dict[str, Any]] = {
    # A few minutes on a 2-core CPU: the README's first command.
    # A wall-clock budget rather than a fixed number of steps, so that the LR schedule is
    # complete and the command takes the same few minutes on a slower or busier machine.
    "quick": {
        "model.preset": "fmnist-cpu",
        "train.minutes": 3,
        "train.epochs": 5,
        # ~680 steps at batch 64 (measured). A gentler peak than the default: with batch 256
        # (~210 steps) 3e-3 reached in 10% of them made the loss spike; not re-tuned since.
        "train.lr": 1e-3,
        "train.warmup": 0.2,
        "eval.n": 1000,
        "sample.n": 64,
    },
    # The CPU recipe at full length: 10 epochs (about 40 min on an idle 2-core CPU, 247 img/s).
    "fmnist-cpu": {"model.preset": "fmnist-cpu", "train.epochs": 10},
    # The headline result (docs/results.md): the fmnist-cpu recipe for 30 minutes of training,
    # then FMNIST-FID of 2,048 samples: `difflab quickstart --preset headline`.
    # Class-conditional since 2026-12-03 (docs/results.md, issue 18): labels dropped 10% of the
    # time in training, and classifier-free guidance at w = 2 on the 9 of 16 DDIM steps with
    # t <= 600 (Kynkaanniemi et al. 2024): 25 network evaluations. w = 2 beat w = 3 on the
    # 30-minute model at each of 4 sample seeds (FID 0.41 against 0.53). The unconditional
    # recipe, with autoguidance, is `headline-unconditional`.
    "headline": {
        "model.preset": "fmnist-cpu",
        "model.num_classes": "auto",
        "train.minutes": 30,
        "train.epochs": 100,
        "sample.steps": 16,
        "sample.guidance": 2.0,
        "sample.guide_interval": "0,600",
        "eval.n": 2048,
    },
    # The headline before 2026-12-03: unconditional; the EMA model at 25% of the run guides the
    # final one (autoguidance, Karras et al. 2024) at w = 2 on the 9 of 16 DDIM steps with
    # t <= 600: 25 network evaluations. The recipe the peer comparisons use.
    "headline-unconditional": {
        "model.preset": "fmnist-cpu",
        "train.minutes": 30,
        "train.epochs": 100,
        "train.guide_at": 0.25,
        "sample.steps": 16,
        "sample.autoguidance": 2.0,
        "sample.guide_interval": "0,600",
        "eval.n": 2048,
    },
    # The reference scale of the fast.ai lessons (GPU).
    "fmnist": {"model.preset": "fmnist", "train.epochs": 25, "train.batch_size": 512},
    # CIFAR-10 with attention at 16x16 and 8x8 (GPU).
    "cifar10": {
        "data.dataset": "cifar10",
        "model.preset": "cifar10",
        "diffusion.schedule": "cosine",
        "train.epochs": 100,
        "train.lr": 2e-4,
        "train.batch_size": 128,
    },
    # Tests: a tiny network on a sliver of data.
    "tiny": {"model.preset": "tiny", "data.limit": 256, "train.epochs": 1, "train.batch_size": 64},
}
