"""The one place that knows a sampler by name.

Each entry says all there is to know about a sampler: the function that runs it, which sampling
options it reads (fields of `difflab.config.SampleConfig`), how it chooses its timesteps for a
budget, and how many network evaluations an image costs. Nobody else branches on a name:
`SAMPLERS[name].plan(alpha_bar, sample)` gives the timesteps, options and cost, and
`SamplingPlan.run` draws the images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from difflab.samplers.base import Generators, NoisePredictor, Sampler, StepCallback
from difflab.samplers.ddim import sample_ddim
from difflab.samplers.ddpm import sample_ddpm, sample_ddpm_skip
from difflab.samplers.dpm_solver import sample_dpmpp_2m
from difflab.samplers.karras import Churn, sample_euler, sample_heun
from difflab.samplers.timesteps import (
    EDM_SIGMA_MAX,
    full_chain,
    karras_timesteps,
    skip_model_steps,
    trailing_timesteps,
)


class SamplingOptions(Protocol):
    """What a sampler may read from the sampling config (difflab.config.SampleConfig)."""

    steps: int
    eta: float
    skip: str
    churn: float
    s_tmin: float
    s_tmax: float
    s_noise: float


@dataclass(frozen=True)
class SamplingPlan:
    """A sampler with its timesteps and options fixed: what runs, and what it costs per image."""

    spec: SamplerSpec
    timesteps: Tensor
    options: dict[str, Any]
    evaluations: int

    def run(
        self,
        predict_noise: NoisePredictor,
        x_T: Tensor,
        alpha_bar: Tensor,
        *,
        generator: Generators = None,
        on_step: StepCallback | None = None,
        clip_x0: tuple[float, float] | None = None,
    ) -> Tensor:
        return self.spec.function(
            predict_noise, x_T, alpha_bar, self.timesteps,
            generator=generator, on_step=on_step, clip_x0=clip_x0, **self.options,
        )  # fmt: skip


def _no_options(alpha_bar: Tensor, sample: SamplingOptions) -> dict[str, Any]:
    return {}


def _one_per_step(timesteps: Tensor, options: dict[str, Any]) -> int:
    return len(timesteps)


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler.

    reads: the SampleConfig fields it uses ("steps" is its budget of timesteps, if listed);
    choose_timesteps(alpha_bar, sample): its default timesteps for that budget;
    sampler_options(alpha_bar, sample): the keyword options its function takes beyond the shared ones;
    count_evaluations(timesteps, options): network evaluations per image.
    """

    name: str
    function: Sampler
    reads: tuple[str, ...]
    choose_timesteps: Callable[[Tensor, SamplingOptions], Tensor]
    sampler_options: Callable[[Tensor, SamplingOptions], dict[str, Any]] = field(
        default=_no_options
    )
    count_evaluations: Callable[[Tensor, dict[str, Any]], int] = field(default=_one_per_step)

    def plan(self, alpha_bar: Tensor, sample: SamplingOptions) -> SamplingPlan:
        timesteps = self.choose_timesteps(alpha_bar, sample)
        options = self.sampler_options(alpha_bar, sample)
        return SamplingPlan(self, timesteps, options, self.count_evaluations(timesteps, options))

    def settings(self, sample: SamplingOptions) -> dict[str, Any]:
        """The options this sampler read from `sample`, e.g. {"steps": 25, "eta": 1.0}."""
        return {name: getattr(sample, name) for name in self.reads}


# --- timestep choices for a budget of `sample.steps` ---
def _trailing(alpha_bar: Tensor, sample: SamplingOptions) -> Tensor:
    # trailing spacing starts at T-1 (Lin et al. 2023, Table 2): the default for DDPM and DDIM
    return trailing_timesteps(alpha_bar.shape[0], sample.steps)


def _karras(alpha_bar: Tensor, sample: SamplingOptions) -> Tensor:
    # Karras et al. 2022 eq. 5 from sigma_max = min(80, table max): schedules such as the clipped
    # cosine reach sigma ~ 2e4 at T-1 and would waste steps there
    return karras_timesteps(alpha_bar, sample.steps, sigma_max=EDM_SIGMA_MAX)


def _karras_heun(alpha_bar: Tensor, sample: SamplingOptions) -> Tensor:
    # Heun pays two evaluations per step but the last: (steps+1)//2 steps fit the budget
    return karras_timesteps(alpha_bar, (sample.steps + 1) // 2, sigma_max=EDM_SIGMA_MAX)


def _heun_evaluations(timesteps: Tensor, options: dict[str, Any]) -> int:
    return 2 * len(timesteps) - 1


def _full_chain(alpha_bar: Tensor, sample: SamplingOptions) -> Tensor:
    return full_chain(alpha_bar.shape[0])


def _skip_options(alpha_bar: Tensor, sample: SamplingOptions) -> dict[str, Any]:
    return {"model_steps": skip_model_steps(sample.skip, alpha_bar.shape[0])}


def _skip_evaluations(timesteps: Tensor, options: dict[str, Any]) -> int:
    # the sampler also calls the model at its first step, T-1, whatever the schedule
    return len(set(options["model_steps"].tolist()) | {int(timesteps[0])})


def _eta_option(alpha_bar: Tensor, sample: SamplingOptions) -> dict[str, Any]:
    return {"eta": sample.eta}


def _churn_option(alpha_bar: Tensor, sample: SamplingOptions) -> dict[str, Any]:
    # Karras et al. 2022, Algorithm 2: S_churn, S_tmin, S_tmax, S_noise (sigma units)
    return {"churn": Churn(sample.churn, sample.s_tmin, sample.s_tmax, sample.s_noise)}


_ENTRIES = (
    SamplerSpec("ddpm", sample_ddpm, ("steps",), _trailing),
    SamplerSpec(
        "ddpm_skip",
        sample_ddpm_skip,
        ("skip",),
        _full_chain,
        sampler_options=_skip_options,
        count_evaluations=_skip_evaluations,
    ),  # fmt: skip
    SamplerSpec("ddim", sample_ddim, ("steps", "eta"), _trailing, sampler_options=_eta_option),
    SamplerSpec("euler", sample_euler, ("steps",), _karras),
    SamplerSpec("heun", sample_heun, ("steps",), _karras_heun, count_evaluations=_heun_evaluations),
    SamplerSpec("dpmpp_2m", sample_dpmpp_2m, ("steps",), _karras),
    # EDM's sampler (Karras et al. 2022, Algorithm 2) is sample_heun with churn: the same Heun
    # steps on eq. 5's rho = 7 sigmas from min(80, table max) down to the table's sigma_min
    SamplerSpec(
        "edm",
        sample_heun,
        ("steps", "churn", "s_tmin", "s_tmax", "s_noise"),
        _karras_heun,
        sampler_options=_churn_option,
        count_evaluations=_heun_evaluations,
    ),  # fmt: skip
)
SAMPLERS: dict[str, SamplerSpec] = {spec.name: spec for spec in _ENTRIES}


def sampler_spec(name: str, *, flag: str = "--sample.sampler") -> SamplerSpec:
    """The registered sampler called `name`; a ValueError naming the flag and the choices."""
    if name not in SAMPLERS:
        raise ValueError(f"{flag}: {name!r} is not one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
