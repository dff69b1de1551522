"""Diffusion maths: schedules (alpha_bar), the forward process, parameterisations and losses.

Imports only torch. Notation: alpha_bar everywhere (DDIM's alpha_t is DDPM's alpha_bar_t);
see difflab.diffusion.schedules for the full notation block.
"""

from difflab.diffusion.edm import (
    EDMObjective,
    EDMPreconditioning,
    edm_noise_predictor,
    log_normal_sigmas,
)
from difflab.diffusion.forward import noisify
from difflab.diffusion.interpolation import alpha_bar_at, sigma_at, timestep_at_sigma
from difflab.diffusion.objectives import (
    TRAINING_OBJECTIVES,
    DiffusionObjective,
    as_noise_predictor,
    make_objective,
    min_snr_weight,
)
from difflab.diffusion.parameterisation import (
    OBJECTIVES,
    eps_from_v,
    eps_from_x0,
    snr,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)
from difflab.diffusion.schedules import (
    Schedule,
    alpha_bar_from_sigma,
    continuous_cosine_alpha_bar,
    continuous_cosine_t,
    cosine_schedule,
    edm_schedule,
    linear_schedule,
    schedule_from_config,
    sigma_from_alpha_bar,
)

__all__ = [
    "OBJECTIVES",
    "TRAINING_OBJECTIVES",
    "DiffusionObjective",
    "EDMObjective",
    "EDMPreconditioning",
    "Schedule",
    "alpha_bar_at",
    "alpha_bar_from_sigma",
    "as_noise_predictor",
    "continuous_cosine_alpha_bar",
    "continuous_cosine_t",
    "cosine_schedule",
    "edm_noise_predictor",
    "edm_schedule",
    "eps_from_v",
    "eps_from_x0",
    "linear_schedule",
    "log_normal_sigmas",
    "make_objective",
    "min_snr_weight",
    "noisify",
    "schedule_from_config",
    "sigma_at",
    "sigma_from_alpha_bar",
    "snr",
    "timestep_at_sigma",
    "v_from_x0_eps",
    "x0_from_eps",
    "x0_from_v",
]
