"""Every default of difflab, in one place.

Each field carries a one-line help text (`metadata["help"]`); the CLI flags are generated from
these dataclasses, so a flag `--train.batch-size` always means `TrainConfig.batch_size`.
Validation errors name the flag the user has to change.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from difflab.config.fields import at_least, choice, option, positive, require
from difflab.config.sampling import SampleConfig

SCHEDULES = ("linear", "cosine", "edm")
OBJECTIVES = ("eps", "x0", "v", "edm")
MODEL_PRESETS = ("tiny", "fmnist-cpu", "fmnist", "cifar10", "diffusers")
LR_SCHEDULES = ("onecycle", "cosine", "constant")
PRECISIONS = ("auto", "no", "bf16", "fp16")
TRACKERS = ("local", "wandb", "tensorboard")
# The grammar of training/callbacks/notify.py's thresholds (config may not import training):
# checked here so that a typo fails before the run folder exists.
_THRESHOLD = re.compile(r"^\s*[^<>\s]+\s*[<>]\s*(?P<value>[-+0-9.eE]+|inf)\s*$")


def _threshold_ok(spec: str) -> bool:
    match = _THRESHOLD.match(spec)
    if match is None:
        return False
    try:
        float(match["value"])
    except ValueError:  # e.g. "fid<1.2.3": the right characters, but not a number
        return False
    return True


def _sigma_rels(values: tuple[float, ...], flag: str) -> None:
    # 1/sqrt(12) is the flat profile (gamma = 0, difflab.models.posthoc_ema.SIGMA_REL_MAX)
    require(len(values) >= 1, flag, "give at least one, e.g. 0.05,0.1")
    for value in values:
        require(0 < value < 12**-0.5, flag, f"each must be in (0, 0.2886), got {value!r}")
    names = [f"{value:.4f}" for value in values]  # the snapshots' file names
    require(len(set(names)) == len(names), flag, f"must differ in 4 decimals, got {names}")


@dataclass(frozen=True)
class DataConfig:
    """Which images to train on and how they are scaled."""

    dataset: str = option("fashion_mnist", "fashion_mnist, mnist, cifar10, or a folder of images")
    root: str | None = option(None, "folder holding the dataset files (else DIFFLAB_DATA, caches)")
    low: float = option(
        -0.5, "pixel value that black maps to (-0.5..0.5 gave better FID than -1..1)"
    )
    high: float = option(0.5, "pixel value that white maps to")
    pad: int = option(0, "zero-pixels of padding on each side (2 turns 28x28 into 32x32)")
    limit: int | None = option(None, "use only the first N training images (quick runs, tests)")
    latent: str | None = option(
        None,
        "latent diffusion (Rombach et al. 2022): a folder from `difflab autoencoder train`; the "
        "images are encoded once and the model trains on their scaled latents (None: pixels)",
    )

    def __post_init__(self) -> None:
        require(bool(self.dataset.strip()), "--data.dataset", "must not be empty")
        require(
            self.latent is None or self.pad == 0,
            "--data.pad",
            "must be 0 with --data.latent (the autoencoder pads and crops its images itself)",
        )
        require(
            math.isfinite(self.low) and math.isfinite(self.high), "--data.low", "must be finite"
        )
        require(self.high > self.low, "--data.high", "must be greater than --data.low")
        require(self.pad >= 0, "--data.pad", "must be >= 0")
        require(self.limit is None or self.limit > 0, "--data.limit", "must be > 0")


@dataclass(frozen=True)
class ModelConfig:
    """The noise-prediction network."""

    preset: str = option(
        "fmnist-cpu",
        "UNet preset: tiny, fmnist-cpu, fmnist, cifar10, or diffusers (a UNet2DModel "
        "shaped like diffusers' unconditional example)",
    )
    dropout: float = option(0.0, "dropout inside residual blocks")
    num_classes: str = option(
        "0",
        "class-conditional with this many classes (a learned class embedding plus a null class "
        "for classifier-free guidance); auto: the dataset's label count; 0: unconditional",
    )

    def __post_init__(self) -> None:
        choice(self.preset, MODEL_PRESETS, "--model.preset")
        require(0.0 <= self.dropout < 1.0, "--model.dropout", "must be in [0, 1)")
        require(
            self.num_classes == "auto" or self.num_classes.isdigit(),
            "--model.num-classes",
            f"must be auto or a whole number >= 0, got {self.num_classes!r}",
        )


@dataclass(frozen=True)
class DiffusionConfig:
    """The forward process and what the network is trained to predict."""

    schedule: str = option(
        "linear",
        "noise schedule: linear, cosine (Nichol & Dhariwal 2021) or edm (sigma log-spaced over "
        "EDM's [0.002, 80], Karras et al. 2022; needed by --diffusion.objective edm)",
    )
    n_steps: int = option(1000, "number of discrete diffusion steps T")
    beta_min: float = option(1e-4, "first beta of the linear schedule")
    beta_max: float = option(0.01, "last beta of the linear schedule (0.01 beat DDPM's 0.02)")
    objective: str = option(
        "v",
        "what the network predicts: eps, x0 or v (Salimans & Ho 2022); v beat eps here "
        "(docs/results.md); edm: Karras et al. 2022's preconditioned denoiser (with "
        "--diffusion.schedule edm)",
    )
    min_snr_gamma: float | None = option(
        5.0,
        "min-SNR-gamma loss weighting (Hang et al. 2023; their gamma 5); None: plain MSE; "
        "unused by edm, which has its own weighting",
    )
    sigma_data: float | None = option(
        None,
        "edm: standard deviation of the training images; None: measured from the training "
        "data when training starts, and recorded in the run's config",
    )
    edm_p_mean: float = option(-1.2, "edm: mean of ln(sigma) of the training noise levels")
    edm_p_std: float = option(1.2, "edm: standard deviation of ln(sigma) while training")

    def __post_init__(self) -> None:
        choice(self.schedule, SCHEDULES, "--diffusion.schedule")
        choice(self.objective, OBJECTIVES, "--diffusion.objective")
        require(self.n_steps >= 2, "--diffusion.n-steps", "must be >= 2")
        require(
            0 < self.beta_min < self.beta_max < 1,
            "--diffusion.beta-max",
            "need 0 < beta_min < beta_max < 1",
        )
        require(
            self.min_snr_gamma is None or self.min_snr_gamma > 0,
            "--diffusion.min-snr-gamma",
            "must be > 0",
        )
        require(
            self.objective != "edm" or self.schedule == "edm",
            "--diffusion.schedule",
            f"--diffusion.objective edm samples on EDM's noise range: add --diffusion.schedule "
            f"edm (got {self.schedule!r})",
        )
        if self.sigma_data is not None:
            positive(self.sigma_data, "--diffusion.sigma-data")
        require(math.isfinite(self.edm_p_mean), "--diffusion.edm-p-mean", "must be finite")
        positive(self.edm_p_std, "--diffusion.edm-p-std")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop."""

    epochs: int = option(5, "passes over the training images")
    minutes: float = option(
        0.0,
        "stop after this many minutes of training, normally (validation, model saved); the "
        "LR schedule follows the share of the budget spent, epochs is then a cap (0: off)",
    )
    batch_size: int = option(
        64,
        "images per optimiser step; 64 because on a 2-core CPU more steps beat bigger batches "
        "at short budgets (12 min: 2.9x lower FMNIST-FID than 256; 30 min: a tie; "
        "docs/results.md)",
    )
    lr: float = option(3e-3, "peak learning rate (AdamW)")
    weight_decay: float = option(1e-5, "AdamW weight decay")
    lr_schedule: str = option("onecycle", "onecycle, cosine (with warm-up) or constant")
    warmup: float = option(0.1, "fraction of steps spent warming up the learning rate")
    grad_clip: float | None = option(1.0, "clip the gradient norm to this value (None: off)")
    ema_decay: float = option(0.999, "EMA decay of the weights used for sampling (0: off)")
    mixed_precision: str = option(
        "auto",
        "auto (bf16 where the CPU or GPU computes it natively, else fp32; the run folder records "
        "the choice), no, bf16 or fp16 (GPU, with grad scaler)",
    )
    seed: int = option(0, "seed of weights, data order and noise")
    checkpoint_every: int = option(
        500, "save a resumable checkpoint every N steps (0: epochs only)"
    )
    max_nonfinite: int = option(5, "stop after this many non-finite losses in a row")
    sample_every: int = option(1, "write a sample grid every N epochs (0: never)")
    eval_every: int = option(0, "compute FID every N epochs during training (0: never)")
    eval_n: int = option(512, "samples per FID during training")
    compile: bool = option(
        False,
        "torch.compile the model, kernels cached in ~/.cache/difflab/torchinductor: the first "
        "run on a machine compiles for 1-2 min (counted in --train.minutes), later runs load "
        "in seconds. Its speed and a 30-min equal-wall-clock FID against eager: docs/results.md",
    )
    cond_drop: float = option(
        0.1,
        "conditional models: share of labels replaced by the null class while training, so one "
        "network also learns the unconditional prediction (Ho & Salimans 2022 used 0.1-0.2)",
    )
    posthoc_ema_every: int = option(
        0,
        "post-hoc EMA (Karras et al. 2024): snapshot the power-function averages every N steps "
        "into RUN/ema_snapshots, for `difflab ema` (0: off)",
    )
    posthoc_ema_sigma_rels: tuple[float, ...] = option(
        (0.05, 0.10), "relative widths of the stored EMA profiles (EDM2's 0.05 and 0.10)"
    )
    guide_at: float = option(
        0.0,
        "autoguidance (Karras et al. 2024): save the EMA model when this share of the run is "
        "done into RUN/guide, the weaker model that --sample.autoguidance steers away from "
        "(0: off)",
    )

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "--train.epochs", "must be >= 1")
        at_least(self.posthoc_ema_every, 0, "--train.posthoc-ema-every")
        _sigma_rels(self.posthoc_ema_sigma_rels, "--train.posthoc-ema-sigma-rels")
        require(
            math.isfinite(self.minutes) and self.minutes >= 0,
            "--train.minutes",
            "must be a finite number >= 0 (0: no time limit)",
        )
        require(self.batch_size >= 1, "--train.batch-size", "must be >= 1")
        positive(self.lr, "--train.lr")
        choice(self.lr_schedule, LR_SCHEDULES, "--train.lr-schedule")
        choice(self.mixed_precision, PRECISIONS, "--train.mixed-precision")
        require(0 <= self.warmup < 1, "--train.warmup", "must be in [0, 1)")
        require(0 <= self.ema_decay < 1, "--train.ema-decay", "must be in [0, 1)")
        require(self.grad_clip is None or self.grad_clip > 0, "--train.grad-clip", "must be > 0")
        require(self.max_nonfinite >= 1, "--train.max-nonfinite", "must be >= 1")
        require(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "--train.weight-decay",
            f"must be a finite number >= 0, got {self.weight_decay!r}",
        )
        at_least(self.seed, 0, "--train.seed")
        at_least(self.checkpoint_every, 0, "--train.checkpoint-every")
        at_least(self.sample_every, 0, "--train.sample-every")
        at_least(self.eval_every, 0, "--train.eval-every")
        at_least(self.eval_n, 2, "--train.eval-n")  # FID needs a covariance: two images or more
        require(0 <= self.cond_drop < 1, "--train.cond-drop", "must be in [0, 1)")
        require(0 <= self.guide_at < 1, "--train.guide-at", "must be in [0, 1) (0: off)")


@dataclass(frozen=True)
class EvalConfig:
    """How sample quality is measured."""

    n: int = option(2048, "number of generated images compared with the reference")
    batch_size: int = option(512, "images per feature-extractor call")
    kid_subset: int = option(1000, "KID subset size")
    kid_subsets: int = option(100, "number of KID subsets")

    def __post_init__(self) -> None:
        require(self.n >= 2, "--eval.n", "must be >= 2")
        require(self.kid_subset >= 2, "--eval.kid-subset", "must be >= 2")
        at_least(self.batch_size, 1, "--eval.batch-size")
        at_least(self.kid_subsets, 1, "--eval.kid-subsets")


@dataclass(frozen=True)
class NotifyConfig:
    """Tell someone when a metric crosses a threshold, or when the run ends or fails."""

    webhook: str | None = option(None, "POST a JSON message to this http(s) URL")
    command: str | None = option(None, "run this command (the JSON event is in $DIFFLAB_EVENT)")
    when: str = option("", "comma-separated thresholds, e.g. 'fid<20,train/loss>5'")
    on_end: bool = option(True, "also notify when the run finishes or fails")

    def __post_init__(self) -> None:
        require(
            self.webhook is None or self.webhook.startswith(("http://", "https://")),
            "--notify.webhook", "must start with http:// or https://",
        )  # fmt: skip
        for spec in filter(str.strip, self.when.split(",")):
            require(
                _threshold_ok(spec), "--notify.when",
                f"{spec.strip()!r}: write METRIC<VALUE or METRIC>VALUE, e.g. 'fid<20'",
            )  # fmt: skip


@dataclass(frozen=True)
class RunConfig:
    """A whole experiment: data, model, diffusion, training, sampling and evaluation."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    runs_dir: str = option("runs", "folder that holds one sub-folder per run")
    name: str | None = option(None, "run name (default: NNNNN-<dataset>-<preset>)")
    trackers: str = option("local", "comma-separated: local, wandb, tensorboard")

    def __post_init__(self) -> None:
        require(bool(self.runs_dir.strip()), "--runs-dir", "must not be empty")
        for tracker in filter(None, self.trackers.split(",")):
            choice(tracker.strip(), TRACKERS, "--trackers")
        require(
            self.sample.autoguidance == 1.0 or self.train.guide_at > 0,
            "--sample.autoguidance",
            "needs a guide model: add --train.guide-at (e.g. 0.25) so the run writes RUN/guide",
        )
