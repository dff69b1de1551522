"""How images are drawn from a trained model: the sampling config and its flags' grammar."""

from __future__ import annotations

import math
from dataclasses import dataclass

from difflab.config.fields import at_least, choice, option, positive, require

SAMPLER_NAMES = ("ddpm", "ddpm_skip", "ddim", "euler", "heun", "dpmpp_2m", "edm")
SKIP_SCHEDULES = ("every_third", "growing")


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
        "guidance (--guidance of a conditional model, or --autoguidance) only at timesteps "
        "t_min,t_max (Kynkaanniemi et al. 2024), one evaluation elsewhere; empty: every step",
    )

    churn: float = option(
        0.0, "edm sampler: S_churn, the added noise per step (Karras et al. 2022, Algorithm 2)"
    )
    s_tmin: float = option(0.0, "edm sampler: S_tmin, churn only at sigma >= this")
    s_tmax: float = option(float("inf"), "edm sampler: S_tmax, churn only at sigma <= this")
    s_noise: float = option(1.0, "edm sampler: S_noise, scale of the churn noise")

    def __post_init__(self) -> None:
        choice(self.sampler, SAMPLER_NAMES, "--sample.sampler")
        require(math.isfinite(self.churn) and self.churn >= 0, "--sample.churn", "must be >= 0")
        require(0 <= self.s_tmin <= self.s_tmax, "--sample.s-tmax", "need 0 <= s_tmin <= s_tmax")
        positive(self.s_noise, "--sample.s-noise")
        require(self.steps >= 1, "--sample.steps", "must be >= 1")
        choice(self.skip, SKIP_SCHEDULES, "--sample.skip")
        require(math.isfinite(self.eta) and self.eta >= 0, "--sample.eta", "must be >= 0")
        require(self.n >= 1, "--sample.n", "must be >= 1")
        at_least(self.seed, 0, "--sample.seed")
        require(self.batch_size >= 1, "--sample.batch-size", "must be >= 1")
        require(
            math.isfinite(self.guidance) and self.guidance >= 0, "--sample.guidance", "must be >= 0"
        )
        require(
            math.isfinite(self.autoguidance) and self.autoguidance >= 0,
            "--sample.autoguidance",
            "must be >= 0",
        )
        require(
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
