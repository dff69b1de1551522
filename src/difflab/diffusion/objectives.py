"""Training objectives: how a batch becomes a loss, and how any model becomes a noise predictor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from difflab.diffusion.edm import EDMObjective, edm_noise_predictor
from difflab.diffusion.forward import gather_alpha_bar, noisify
from difflab.diffusion.guidance import drop_labels
from difflab.diffusion.interpolation import alpha_bar_at
from difflab.diffusion.parameterisation import (
    OBJECTIVES,
    Objective,
    eps_from_prediction,
    expand_like,
    snr,
    target_for,
)
from difflab.diffusion.schedules import Schedule

Model = Callable[[Tensor, Tensor], Tensor]
# what --diffusion.objective may name: a VP prediction target, or EDM's preconditioned denoiser
TRAINING_OBJECTIVES: tuple[str, ...] = (*OBJECTIVES, "edm")


# --- Min-SNR-gamma weighting, Hang et al. 2023, Sec. 3.4 ---
# The paper weights the x0-space error by min(SNR, gamma). Since
# ||eps - eps_hat||^2 = SNR * ||x0 - x0_hat||^2 and ||v - v_hat||^2 = (SNR + 1) * ||x0 - x0_hat||^2,
# the same weighting reads min(SNR, gamma) / SNR on the eps loss and
# min(SNR, gamma) / (SNR + 1) on the v loss.
def min_snr_weight(alpha_bar: Tensor, gamma: float, objective: Objective) -> Tensor:
    """Per-sample loss weight that makes each objective equal min(SNR, gamma) * x0-space MSE."""
    ratio = snr(alpha_bar)
    clipped = ratio.clamp(max=gamma)
    if objective == "x0":
        return clipped
    if objective == "eps":
        return clipped / ratio
    if objective == "v":
        return clipped / (ratio + 1)
    raise ValueError(f"unknown objective {objective!r}: choose one of {OBJECTIVES}")


class DiffusionObjective:
    """callable(model, batch) -> scalar float32 loss, for batches (x0, y) of float images.

    With `null_class` set (a class-conditional model) the labels y go to the model as
    model(x_t, t, y), each replaced by the null class with probability `cond_drop`.
    """

    def __init__(
        self,
        schedule: Schedule,
        *,
        objective: Objective = "eps",
        min_snr_gamma: float | None = None,
        null_class: int | None = None,
        cond_drop: float = 0.0,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {objective!r}: choose one of {OBJECTIVES} (--diffusion.objective)"
            )
        if min_snr_gamma is not None and not min_snr_gamma > 0:
            raise ValueError(
                f"min_snr_gamma must be > 0 (--diffusion.min-snr-gamma), got {min_snr_gamma}"
            )
        if not 0 <= cond_drop < 1:
            raise ValueError(f"cond_drop must be in [0, 1) (--train.cond-drop), got {cond_drop}")
        self.schedule = schedule
        self.objective: Objective = objective
        self.min_snr_gamma = min_snr_gamma
        self.null_class, self.cond_drop = null_class, cond_drop
        self._tables: dict[torch.device, Tensor] = {}

    def __repr__(self) -> str:
        return (
            f"DiffusionObjective(objective={self.objective!r}, min_snr_gamma={self.min_snr_gamma})"
        )

    def _alpha_bar_on(self, device: torch.device) -> Tensor:
        if device not in self._tables:  # cache: one host->device copy per device
            dtype = torch.float32 if device.type == "mps" else torch.float64
            self._tables[device] = self.schedule.alpha_bar.to(device=device, dtype=dtype)
        return self._tables[device]

    def __call__(self, model: Model, batch: Any) -> Tensor:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        x0 = x0.float()
        x_t, t, eps = noisify(x0, self._alpha_bar_on(x0.device))  # global RNG on purpose
        if self.null_class is None:
            prediction = model(x_t, t)
        else:  # labels drawn after the noise: resumable through the same saved RNG state
            y = drop_labels(batch[1], null_class=self.null_class, p=self.cond_drop)
            prediction = model(x_t, t, y)
        return self.loss(prediction, x0=x0, eps=eps, t=t)

    def loss(self, prediction: Tensor, *, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """Weighted MSE in float32, outside any autocast region (bf16 models included)."""
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            x0, eps = x0.float(), eps.float()
            ab = gather_alpha_bar(self._alpha_bar_on(x0.device), t, x0)
            target = target_for(self.objective, x0, eps, ab)
            per_sample = (prediction.float() - target).pow(2).flatten(1).mean(dim=1)  # (B,)
            if self.min_snr_gamma is None:
                return per_sample.mean()
            weight = min_snr_weight(ab.flatten(), self.min_snr_gamma, self.objective)
            return (weight * per_sample).mean()


def make_objective(
    schedule: Schedule,
    *,
    objective: str = "eps",
    min_snr_gamma: float | None = None,
    null_class: int | None = None,
    cond_drop: float = 0.0,
    sigma_data: float | None = None,
    p_mean: float | None = None,
    p_std: float | None = None,
) -> DiffusionObjective | EDMObjective:
    """The loss for training a model that predicts `objective` (eps, x0 or v on the schedule),
    or EDM's denoiser ("edm": sigma_data, p_mean and p_std needed; schedule and min_snr_gamma
    unused, EDM's sigma distribution and weighting replace them)."""
    if objective == "edm":
        if sigma_data is None or p_mean is None or p_std is None:
            raise ValueError("objective 'edm' needs sigma_data, p_mean and p_std")
        return EDMObjective(
            sigma_data=sigma_data, p_mean=p_mean, p_std=p_std, null_class=null_class,
            cond_drop=cond_drop,
        )  # fmt: skip
    return DiffusionObjective(
        schedule, objective=objective, min_snr_gamma=min_snr_gamma, null_class=null_class,  # type: ignore[arg-type]
        cond_drop=cond_drop,
    )  # fmt: skip


def as_noise_predictor(
    model: Model, schedule: Schedule, objective: str, *, sigma_data: float | None = None
) -> Model:
    """Wrap a model trained on `objective` as predict_noise(x_t, t[, y]) -> eps for the samplers.

    t may be fractional (Karras samplers); alpha_bar_t is then interpolated (see interpolation.py).
    The output has x_t's dtype, so conversions run in the sampler's float32/float64. An "edm"
    model needs its sigma_data (diffusion/edm.py maps VP (x_t, t) to EDM's sigma space).
    """
    if objective == "edm":
        if sigma_data is None:
            raise ValueError("an 'edm' model needs sigma_data (diffusion.sigma_data in its config)")
        return edm_noise_predictor(model, schedule, sigma_data)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: choose one of {TRAINING_OBJECTIVES}")

    def predict_noise(x_t: Tensor, t: Tensor, *condition: Tensor) -> Tensor:
        prediction = model(x_t, t, *condition).to(x_t.dtype)
        if objective == "eps":
            return prediction
        ab = expand_like(alpha_bar_at(schedule.alpha_bar, t.detach().cpu()), x_t)
        return eps_from_prediction(objective, x_t, prediction, ab)  # type: ignore[arg-type]

    return predict_noise
