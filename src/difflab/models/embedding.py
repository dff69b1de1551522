"""Timestep embedding: sinusoidal features followed by a small MLP."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


# --- Sinusoidal position encoding, Vaswani et al. 2017 (section 3.5); used for diffusion
# timesteps by Ho et al. 2020 (appendix B). Frequencies 1 / max_period^(i / half), cos then sin
# (the order diffusers' `get_timestep_embedding(flip_sin_to_cos=True)` uses).
def timestep_embedding(t: Tensor, dim: int, *, max_period: float = 10000.0) -> Tensor:
    """(B,) int or float timesteps -> (B, dim) float32 features."""
    if t.ndim != 1:
        raise ValueError(f"timesteps must have shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:  # odd width: pad one zero column
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class TimeEmbedding(nn.Module):
    """t -> sinusoidal(t) -> Linear -> SiLU -> Linear (Ho et al. 2020's `temb` MLP)."""

    def __init__(self, freq_dim: int, emb_dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))
