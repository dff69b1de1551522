"""Every default of difflab, in one place.

Each field carries a one-line help text (`metadata["help"]`); the CLI flags are generated from
these dataclasses, so a flag `--train.batch-size` always means `TrainConfig.batch_size`.
Validation errors name the flag the user has to change.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

SCHEDULES = ("linear", "cosine", "edm")
OBJECTIVES = ("eps", "x0", "v", "edm")
MODEL_PRESETS = ("tiny", "fmnist-cpu", "fmnist", "cifar10", "diffusers")
LR_SCHEDULES = ("onecycle", "cosine", "constant")
PRECISIONS = ("auto", "no", "bf16", "fp16")
SAMPLER_NAMES = ("ddpm", "ddpm_skip", "ddim", "euler", "heun", "dpmpp_2m", "edm")
TRACKERS = ("local", "wandb", "tensorboard")
SKIP_SCHEDULES = ("every_third", "growing")
# The grammar of training/callbacks/notify.py's thresholds (config may not import training):
# checked here so that a typo fails before the run folder exists.
_THRESHOLD = re.compile(r"^\s*[^<>\s]+\s*[<>]\s*(?P<value>[-+0-9.eE]+|inf)\s*$")


def option(default: Any, help: str) -> Any:
    """A dataclass field with its one-line help text (used for --help)."""
    if isinstance(default, list | dict | set):
        raise TypeError("use tuples for sequence defaults: configs are frozen")
    return field(default=default, metadata={"help": help})


def _require(ok: bool, flag: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{flag}: {message}")


def _at_least(value: float, low: float, flag: str) -> None:
    _require(value >= low, flag, f"must be >= {low:g}, got {value!r}")


def _positive(value: float, flag: str) -> None:
    # also refuses nan and inf, which would only fail (or never finish) deep inside training
    _require(
        math.isfinite(value) and value > 0, flag, f"must be a finite number > 0, got {value!r}"
    )


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
    _require(len(values) >= 1, flag, "give at least one, e.g. 0.05,0.1")
    for value in values:
        _require(0 < value < 12**-0.5, flag, f"each must be in (0, 0.2886), got {value!r}")
    names = [f"{value:.4f}" for value in values]  # the snapshots' file names
    _require(len(set(names)) == len(names), flag, f"must differ in 4 decimals, got {names}")


def _choice(value: str, choices: tuple[str, ...], flag: str) -> None:
    _require(value in choices, flag, f"{value!r} is not one of {', '.join(choices)}")


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
        _require(bool(self.dataset.strip()), "--data.dataset", "must not be empty")
        _require(
            self.latent is None or self.pad == 0,
            "--data.pad",
            "must be 0 with --data.latent (the autoencoder pads and crops its images itself)",
        )
        _require(
            math.isfinite(self.low) and math.isfinite(self.high), "--data.low", "must be finite"
        )
        _require(self.high > self.low, "--data.high", "must be greater than --data.low")
        _require(self.pad >= 0, "--data.pad", "must be >= 0")
        _require(self.limit is None or self.limit > 0, "--data.limit", "must be > 0")


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
        _choice(self.preset, MODEL_PRESETS, "--model.preset")
        _require(0.0 <= self.dropout < 1.0, "--model.dropout", "must be in [0, 1)")
        _require(
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
        _choice(self.schedule, SCHEDULES, "--diffusion.schedule")
        _choice(self.objective, OBJECTIVES, "--diffusion.objective")
        _require(self.n_steps >= 2, "--diffusion.n-steps", "must be >= 2")
        _require(
            0 < self.beta_min < self.beta_max < 1,
            "--diffusion.beta-max",
            "need 0 < beta_min < beta_max < 1",
        )
        _require(
            self.min_snr_gamma is None or self.min_snr_gamma > 0,
            "--diffusion.min-snr-gamma",
            "must be > 0",
        )
        _require(
            self.objective != "edm" or self.schedule == "edm",
            "--diffusion.schedule",
            f"--diffusion.objective edm samples on EDM's noise range: add --diffusion.schedule "
            f"edm (got {self.schedule!r})",
        )
        if self.sigma_data is not None:
            _positive(self.sigma_data, "--diffusion.sigma-data")
        _require(math.isfinite(self.edm_p_mean), "--diffusion.edm-p-mean", "must be finite")
        _positive(self.edm_p_std, "--diffusion.edm-p-std")


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
        _require(self.epochs >= 1, "--train.epochs", "must be >= 1")
        _at_least(self.posthoc_ema_every, 0, "--train.posthoc-ema-every")
        _sigma_rels(self.posthoc_ema_sigma_rels, "--train.posthoc-ema-sigma-rels")
        _require(
            math.isfinite(self.minutes) and self.minutes >= 0,
            "--train.minutes",
            "must be a finite number >= 0 (0: no time limit)",
        )
        _require(self.batch_size >= 1, "--train.batch-size", "must be >= 1")
        _positive(self.lr, "--train.lr")
        _choice(self.lr_schedule, LR_SCHEDULES, "--train.lr-schedule")
        _choice(self.mixed_precision, PRECISIONS, "--train.mixed-precision")
        _require(0 <= self.warmup < 1, "--train.warmup", "must be in [0, 1)")
        _require(0 <= self.ema_decay < 1, "--train.ema-decay", "must be in [0, 1)")
        _require(self.grad_clip is None or self.grad_clip > 0, "--train.grad-clip", "must be > 0")
        _require(self.max_nonfinite >= 1, "--train.max-nonfinite", "must be >= 1")
        _require(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "--train.weight-decay",
            f"must be a finite number >= 0, got {self.weight_decay!r}",
        )
        _at_least(self.seed, 0, "--train.seed")
        _at_least(self.checkpoint_every, 0, "--train.checkpoint-every")
        _at_least(self.sample_every, 0, "--train.sample-every")
        _at_least(self.eval_every, 0, "--train.eval-every")
        _at_least(self.eval_n, 2, "--train.eval-n")  # FID needs a covariance: two images or more
        _require(0 <= self.cond_drop < 1, "--train.cond-drop", "must be in [0, 1)")
        _require(0 <= self.guide_at < 1, "--train.guide-at", "must be in [0, 1) (0: off)")


@dataclass(frozen=True)
class SampleConfig:
    """How images are drawn from a trained model."""

    sampler: str = option(
        "ddim",
        "ddpm, ddpm_skip, ddim, euler, heun, dpmpp_2m or edm (Karras et al. 2022, Algorithm 2: "
        "Heun on rho=7 sigmas with --sample.churn)",
    )
    steps: int = option(
        25, "model evaluations budget: number of sampling steps (ddpm_skip: see skip)"
    )
    skip: str = option(
        "every_third",
        "ddpm_skip only: which timesteps call the model (the rest reuse the last eps): "
        "every_third (every 3rd t plus t < 50; 367 calls at T=1000) or growing "
        "(t+101 divisible by (t+101)//100: every t below 100, every 10th near T=1000; 296 "
        "calls at T=1000); the schedule sets the model calls, so steps is ignored",
    )
    eta: float = option(
        1.0,
        "DDIM eta: 0 deterministic, 1 = DDPM's posterior noise on the sub-sequence "
        "(1 gave the lower FID at 25 steps: docs/results.md)",
    )
    n: int = option(64, "number of images")
    seed: int = option(0, "image k uses seed + k, whatever the batch size")
    batch_size: int = option(256, "images per model call")
    clip_x0: bool = option(False, "clip predicted x0 to the data range at every step")
    guidance: float = option(
        1.0,
        "classifier-free guidance scale w of a conditional model: eps_u + w (eps_c - eps_u); "
        "0 unconditional, 1 conditional (one network evaluation per step), other values two",
    )

    autoguidance: float = option(
        1.0,
        "autoguidance scale w (Karras et al. 2024): eps_guide + w (eps - eps_guide), the guide "
        "a weaker, less-trained version of the model (RUN/guide, see --train.guide-at); 1: off "
        "(one network evaluation per step), other values two on the guided steps",
    )
    guide_interval: str = option(
        "",
        "autoguidance only at timesteps t_min,t_max (Kynkaanniemi et al. 2024), one evaluation "
        "elsewhere; empty: every step",
    )

    churn: float = option(
        0.0, "edm sampler: S_churn, the added noise per step (Karras et al. 2022, Algorithm 2)"
    )
    s_tmin: float = option(0.0, "edm sampler: S_tmin, churn only at sigma >= this")
    s_tmax: float = option(float("inf"), "edm sampler: S_tmax, churn only at sigma <= this")
    s_noise: float = option(1.0, "edm sampler: S_noise, scale of the churn noise")

    def __post_init__(self) -> None:
        _choice(self.sampler, SAMPLER_NAMES, "--sample.sampler")
        _require(math.isfinite(self.churn) and self.churn >= 0, "--sample.churn", "must be >= 0")
        _require(0 <= self.s_tmin <= self.s_tmax, "--sample.s-tmax", "need 0 <= s_tmin <= s_tmax")
        _positive(self.s_noise, "--sample.s-noise")
        _require(self.steps >= 1, "--sample.steps", "must be >= 1")
        _choice(self.skip, SKIP_SCHEDULES, "--sample.skip")
        _require(math.isfinite(self.eta) and self.eta >= 0, "--sample.eta", "must be >= 0")
        _require(self.n >= 1, "--sample.n", "must be >= 1")
        _at_least(self.seed, 0, "--sample.seed")
        _require(self.batch_size >= 1, "--sample.batch-size", "must be >= 1")
        _require(
            math.isfinite(self.guidance) and self.guidance >= 0, "--sample.guidance", "must be >= 0"
        )
        _require(
            math.isfinite(self.autoguidance) and self.autoguidance >= 0,
            "--sample.autoguidance",
            "must be >= 0",
        )
        _require(
            self.guide_interval == "" or parse_interval(self.guide_interval) is not None,
            "--sample.guide-interval",
            f"must be two timesteps t_min,t_max with t_min <= t_max, got {self.guide_interval!r}",
        )

    def guided_timesteps(self) -> tuple[float, float] | None:
        """(t_min, t_max) of --sample.guide-interval; None: every step."""
        return parse_interval(self.guide_interval) if self.guide_interval else None


def parse_interval(text: str) -> tuple[float, float] | None:
    """ "t_min,t_max" -> (t_min, t_max), or None when it is not two ordered numbers."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        return None
    return (low, high) if math.isfinite(low) and math.isfinite(high) and low <= high else None


@dataclass(frozen=True)
class EvalConfig:
    """How sample quality is measured."""

    n: int = option(2048, "number of generated images compared with the reference")
    batch_size: int = option(512, "images per feature-extractor call")
    kid_subset: int = option(1000, "KID subset size")
    kid_subsets: int = option(100, "number of KID subsets")

    def __post_init__(self) -> None:
        _require(self.n >= 2, "--eval.n", "must be >= 2")
        _require(self.kid_subset >= 2, "--eval.kid-subset", "must be >= 2")
        _at_least(self.batch_size, 1, "--eval.batch-size")
        _at_least(self.kid_subsets, 1, "--eval.kid-subsets")


@dataclass(frozen=True)
class NotifyConfig:
    """Tell someone when a metric crosses a threshold, or when the run ends or fails."""

    webhook: str | None = option(None, "POST a JSON message to this http(s) URL")
    command: str | None = option(None, "run this command (the JSON event is in $DIFFLAB_EVENT)")
    when: str = option("", "comma-separated thresholds, e.g. 'fid<20,train/loss>5'")
    on_end: bool = option(True, "also notify when the run finishes or fails")

    def __post_init__(self) -> None:
        _require(
            self.webhook is None or self.webhook.startswith(("http://", "https://")),
            "--notify.webhook", "must start with http:// or https://",
        )  # fmt: skip
        for spec in filter(str.strip, self.when.split(",")):
            _require(
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
        _require(bool(self.runs_dir.strip()), "--runs-dir", "must not be empty")
        for tracker in filter(None, self.trackers.split(",")):
            _choice(tracker.strip(), TRACKERS, "--trackers")
        _require(
            self.sample.autoguidance == 1.0 or self.train.guide_at > 0,
            "--sample.autoguidance",
            "needs a guide model: add --train.guide-at (e.g. 0.25) so the run writes RUN/guide",
        )
