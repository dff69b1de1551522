"""Samplers: pure functions with one signature (after k-diffusion).

    sample_xxx(predict_noise, x_T, alpha_bar, timesteps, *, generator=None, on_step=None,
               clip_x0=None, **sampler_specific) -> final batch

`predict_noise(x_t, t)` is any callable returning eps; t is int64 (B,) for integer timesteps and
float32 (B,) for fractional ones. `timesteps` come from difflab.samplers.timesteps. SAMPLERS is
the only name -> function map outside cli/. Imports difflab.diffusion and torch only.
"""

from difflab.samplers.base import Sampler, StepInfo, draw_noise
from difflab.samplers.ddim import sample_ddim
from difflab.samplers.ddpm import sample_ddpm, sample_ddpm_skip
from difflab.samplers.dpm_solver import sample_dpmpp_2m
from difflab.samplers.karras import Churn, sample_euler, sample_heun
from difflab.samplers.seeding import image_generators, initial_noise, sample_in_batches
from difflab.samplers.timesteps import timesteps_for

SAMPLERS: dict[str, Sampler] = {
    "ddpm": sample_ddpm,
    "ddpm_skip": sample_ddpm_skip,
    "ddim": sample_ddim,
    "euler": sample_euler,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
}

__all__ = [
    "SAMPLERS",
    "Churn",
    "Sampler",
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
    "timesteps_for",
]
