"""Samplers: pure functions with one signature (after k-diffusion).

    sample_xxx(predict_noise, x_T, alpha_bar, timesteps, *, generator=None, on_step=None,
               clip_x0=None, **sampler_specific) -> final batch

`predict_noise(x_t, t)` is any callable returning eps; t is int64 (B,) for integer timesteps and
float32 (B,) for fractional ones. `timesteps` come from difflab.samplers.timesteps. The registry
SAMPLERS (samplers/registry.py) is the only place that knows a sampler by name: its function,
the options it reads, its timesteps for a budget and its network evaluations per image.
Imports difflab.diffusion and torch only.
"""

from difflab.samplers.base import Sampler, StepInfo, draw_noise
from difflab.samplers.ddim import sample_ddim
from difflab.samplers.ddpm import sample_ddpm, sample_ddpm_skip
from difflab.samplers.dpm_solver import sample_dpmpp_2m
from difflab.samplers.karras import Churn, sample_euler, sample_heun
from difflab.samplers.registry import SAMPLERS, SamplerSpec, SamplingPlan, sampler_spec
from difflab.samplers.seeding import image_generators, initial_noise, sample_in_batches
from difflab.samplers.timesteps import SKIP_SCHEDULES

__all__ = [
    "SAMPLERS",
    "SKIP_SCHEDULES",
    "Churn",
    "Sampler",
    "SamplerSpec",
    "SamplingPlan",
    "StepInfo",
    "draw_noise",
    "image_generators",
    "initial_noise",
    "sample_ddim",
    "sample_ddpm",
    "sample_ddpm_skip",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_heun",
    "sample_in_batches",
    "sampler_spec",
]
