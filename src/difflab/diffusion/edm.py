"""The EDM formulation: a preconditioned denoiser D(x; sigma), its training loss, and its use by
the VP samplers.

Source: Karras, Aittala, Aila & Laine 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models" (EDM), Table 1 ("Ours" column), eqs. 2, 5, 7 and Algorithm 2.

Notation block: EDM works in variance-exploding space, x_sigma = y + n with n ~ N(0, sigma^2 I),
and sd = sigma_data is the standard deviation of the data y. The VP samplers of difflab walk a
table alpha_bar_t instead; the two are one process seen in two coordinates (eq. 2 with
s(t) = sqrt(alpha_bar)): x_t = x_sigma / sqrt(1 + sigma^2), alpha_bar = 1 / (1 + sigma^2), and the
noise eps = (x_sigma - y) / sigma is the same in both.

Network noise input: EDM feeds c_noise = ln(sigma) / 4 to its network. difflab's UNet embeds its
"t" with sinusoids whose frequencies run from 1 to 1e-4 (made for t in 0..999), so c_noise over
EDM's range (-1.55 .. 1.10) would barely turn the fastest sinusoid. The network therefore sees
NOISE_LABEL_SCALE * c_noise = 250 ln(sigma): a span of about 2,650 over [0.002, 80], the same
order as the VP models' 0..999 (negative values are fine for sinusoids).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from difflab.diffusion.guidance import drop_labels
from difflab.diffusion.interpolation import sigma_at
from difflab.diffusion.parameterisation import expand_like
from difflab.diffusion.schedules import Schedule

NOISE_LABEL_SCALE = 1000.0  # the UNet sees NOISE_LABEL_SCALE * c_noise (module docstring)

Model = Callable[..., Tensor]


# --- EDM preconditioning, Karras et al. 2022, Table 1 ("Ours") and eq. 7 ---
@dataclass(frozen=True)
class EDMPreconditioning:
    """c_skip, c_out, c_in, c_noise and the loss weight lambda for data of std `sigma_data`.

    Methods take sigma as a float or a tensor broadcasting against the images.
    """

    sigma_data: float

    def __post_init__(self) -> None:
        if not self.sigma_data > 0:
            raise ValueError(
                f"sigma_data must be > 0 (--diffusion.sigma-data), got {self.sigma_data}"
            )

    def c_skip(self, sigma: Tensor) -> Tensor:
        """sd^2 / (sigma^2 + sd^2)."""
        return self.sigma_data**2 / (sigma**2 + self.sigma_data**2)

    def c_out(self, sigma: Tensor) -> Tensor:
        """sigma sd / sqrt(sigma^2 + sd^2)."""
        return sigma * self.sigma_data / (sigma**2 + self.sigma_data**2) ** 0.5

    def c_in(self, sigma: Tensor) -> Tensor:
        """1 / sqrt(sigma^2 + sd^2)."""
        return 1 / (sigma**2 + self.sigma_data**2) ** 0.5

    def c_noise(self, sigma: Tensor) -> Tensor:
        """ln(sigma) / 4 (the network sees NOISE_LABEL_SCALE times this)."""
        return torch.as_tensor(sigma).log() / 4

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def denoise(self, model: Model, x: Tensor, sigma: Tensor, *condition: Tensor) -> Tensor:
        """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) for x (B, C, H, W), sigma (B,)."""
        s = expand_like(sigma, x)
        noise_label = NOISE_LABEL_SCALE * self.c_noise(sigma.to(x.device))  # (B,), sigma's dtype
        f = model(self.c_in(s) * x, noise_label, *condition).to(x.dtype)
        return self.c_skip(s) * x + self.c_out(s) * f


# --- Training noise levels, Karras et al. 2022, Table 1: ln(sigma) ~ N(P_mean, P_std^2) ---
def log_normal_sigmas(
    n: int, *, p_mean: float, p_std: float, device: torch.device | str = "cpu"
) -> Tensor:
    """n noise levels (float32) with ln(sigma) ~ N(p_mean, p_std^2), from the global RNG."""
    return (torch.randn(n, device=device) * p_std + p_mean).exp()


class EDMObjective:
    """callable(model, batch) -> scalar float32 loss: E lambda(sigma) ||D(y + n; sigma) - y||^2.

    Karras et al. 2022, eq. 8 with Table 1's sigma distribution and weighting. Since
    lambda c_out^2 = 1 this is the plain MSE of F against (y - c_skip x) / c_out. With
    `null_class` set the labels go to the model as model(x, c_noise, y), each replaced by the
    null class with probability `cond_drop` (as DiffusionObjective does).
    """

    def __init__(
        self,
        *,
        sigma_data: float,
        p_mean: float,
        p_std: float,
        null_class: int | None = None,
        cond_drop: float = 0.0,
    ) -> None:
        if not p_std > 0:
            raise ValueError(f"p_std must be > 0 (--diffusion.edm-p-std), got {p_std}")
        if not 0 <= cond_drop < 1:
            raise ValueError(f"cond_drop must be in [0, 1) (--train.cond-drop), got {cond_drop}")
        self.precond = EDMPreconditioning(sigma_data)
        self.p_mean, self.p_std = p_mean, p_std
        self.null_class, self.cond_drop = null_class, cond_drop

    def __repr__(self) -> str:
        return (
            f"EDMObjective(sigma_data={self.precond.sigma_data}, p_mean={self.p_mean}, "
            f"p_std={self.p_std})"
        )

    def __call__(self, model: Model, batch: Any) -> Tensor:
        y = (batch[0] if isinstance(batch, (tuple, list)) else batch).float()
        sigma = log_normal_sigmas(len(y), p_mean=self.p_mean, p_std=self.p_std, device=y.device)
        x = y + expand_like(sigma, y) * torch.randn_like(y)  # global RNG, like noisify
        condition: tuple[Tensor, ...] = ()
        if self.null_class is not None:  # labels drawn after the noise, as DiffusionObjective
            condition = (drop_labels(batch[1], null_class=self.null_class, p=self.cond_drop),)
        return self.loss(self.precond.denoise(model, x, sigma, *condition), y=y, sigma=sigma)

    def loss(self, denoised: Tensor, *, y: Tensor, sigma: Tensor) -> Tensor:
        """lambda(sigma)-weighted MSE of D against the clean images, in float32."""
        with torch.autocast(device_type=denoised.device.type, enabled=False):
            per_sample = (denoised.float() - y.float()).pow(2).flatten(1).mean(dim=1)  # (B,)
            return (self.precond.loss_weight(sigma.float()) * per_sample).mean()


# --- VP <-> VE, Karras et al. 2022, eq. 2 with s = sqrt(alpha_bar), sigma = sqrt(1/alpha_bar - 1) ---
def edm_noise_predictor(model: Model, schedule: Schedule, sigma_data: float) -> Model:
    """predict_noise(x_t, t[, y]) -> eps for the VP samplers, from an EDM-trained network.

    sigma(t) comes from the table (fractional t by log-sigma interpolation); then
    x_sigma = sqrt(1 + sigma^2) x_t, D = D(x_sigma; sigma) and eps = (x_sigma - D) / sigma.
    """
    precond = EDMPreconditioning(sigma_data)

    def predict_noise(x_t: Tensor, t: Tensor, *condition: Tensor) -> Tensor:
        t = torch.as_tensor(t).detach().cpu()
        sigma = sigma_at(schedule.alpha_bar, t.to(torch.float64)).reshape(-1)
        sigma = sigma.expand(x_t.shape[0]) if sigma.numel() == 1 else sigma
        s = expand_like(sigma, x_t)
        x_sigma = x_t * (1 + s**2) ** 0.5
        denoised = precond.denoise(model, x_sigma, sigma.to(x_t.device, x_t.dtype), *condition)
        return (x_sigma - denoised) / s

    return predict_noise
