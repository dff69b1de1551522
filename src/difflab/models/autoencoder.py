"""A small KL-regularised convolutional autoencoder: the first stage of latent diffusion.

Rombach et al. 2022 ("High-Resolution Image Synthesis with Latent Diffusion Models", sec. 3):
an encoder E maps an image x (C, H, W) to a latent z (c, H/f, W/f) with a small downsampling
factor f, a decoder D maps it back, and the diffusion model is trained on z instead of x. The
KL-regularised variant (their "KL-reg.") makes E output a diagonal Gaussian q(z|x) = N(mu,
sigma^2) and adds a slight KL penalty towards N(0, I), which keeps the latent space from having
an arbitrary scale; here the diffusion model is trained on the posterior means mu.

    encoder: pad to a multiple of f -> conv 3x3 -> [res block -> strided conv] x log2(f)
             -> res block -> GroupNorm -> SiLU -> conv 3x3 -> (mu, logvar)
    decoder: conv 3x3 -> res block -> [nearest x2 -> conv 3x3 -> res block] x log2(f)
             -> GroupNorm -> SiLU -> conv 3x3 -> crop back to (H, W)

Padding is explicit: an input whose sides are not multiples of f is padded at the bottom and
right by replicating its edge, and `decode` crops to the image size given at construction
(28x28 with f = 4 -> 7x7 latents, 30x30 -> 8x8 latents -> 30x30 images).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difflab.models.blocks import group_norm

CONFIG_KIND = "difflab.Autoencoder"
DOWNSAMPLE_FACTORS = (1, 2, 4, 8)


@dataclass(frozen=True)
class AutoencoderArch:
    """Everything that defines an autoencoder's architecture (stored in its model.json)."""

    image_shape: tuple[int, int, int]  # (C, H, W) of the images it encodes
    downsample: int = 4  # f: latents are (latent_channels, ceil(H/f), ceil(W/f))
    latent_channels: int = 4
    width: int = 32  # channels at full resolution; x2 per level down, at most 4x width
    norm_groups: int = 8

    def __post_init__(self) -> None:
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape!r}")
        if self.downsample not in DOWNSAMPLE_FACTORS:
            raise ValueError(
                f"downsample must be one of {DOWNSAMPLE_FACTORS}, got {self.downsample}"
            )
        if self.latent_channels < 1 or self.width < 1 or self.norm_groups < 1:
            raise ValueError("latent_channels, width and norm_groups must be >= 1")

    @property
    def levels(self) -> int:
        return int(math.log2(self.downsample))

    @property
    def padded_size(self) -> tuple[int, int]:
        """(H, W) rounded up to multiples of the downsampling factor."""
        f = self.downsample
        return (-(-self.image_shape[1] // f) * f, -(-self.image_shape[2] // f) * f)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        h, w = self.padded_size
        return (self.latent_channels, h // self.downsample, w // self.downsample)

    def level_width(self, i: int) -> int:
        return self.width * min(2**i, 4)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AutoencoderArch:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - {"kind"}
        if unknown:
            raise ValueError(f"unknown autoencoder keys {sorted(unknown)}; known: {sorted(known)}")
        if d.get("kind", CONFIG_KIND) != CONFIG_KIND:
            raise ValueError(f"kind {d['kind']!r} is not {CONFIG_KIND!r}")
        args = {k: v for k, v in d.items() if k != "kind"}
        args["image_shape"] = tuple(args.get("image_shape", ()))
        return cls(**args)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv 3x3, twice, plus a (1x1-projected) skip (no time input)."""

    def __init__(self, in_ch: int, out_ch: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            group_norm(in_ch, groups), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1),
            group_norm(out_ch, groups), nn.SiLU(), nn.Conv2d(out_ch, out_ch, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


def _head(in_ch: int, out_ch: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        group_norm(in_ch, groups), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1)
    )


class Autoencoder(nn.Module):
    """encode(x) -> (mu, logvar) of q(z|x); decode(z) -> x_hat; forward(x) -> (x_hat, mu, logvar)
    with z sampled from q(z|x) in training mode and z = mu in eval mode."""

    def __init__(self, arch: AutoencoderArch) -> None:
        super().__init__()
        self.arch = a = arch
        c, g, n = a.image_shape[0], a.norm_groups, a.levels
        widths = [a.level_width(i) for i in range(n + 1)]
        enc: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, padding=1)]
        for i in range(n):
            enc += [ResBlock(widths[i], widths[i], g), nn.Conv2d(widths[i], widths[i + 1], 3, 2, 1)]
        enc += [ResBlock(widths[n], widths[n], g), _head(widths[n], 2 * a.latent_channels, g)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(a.latent_channels, widths[n], 3, padding=1)]
        dec.append(ResBlock(widths[n], widths[n], g))
        for i in reversed(range(n)):
            dec += [nn.Upsample(scale_factor=2, mode="nearest")]
            dec += [
                nn.Conv2d(widths[i + 1], widths[i], 3, padding=1),
                ResBlock(widths[i], widths[i], g),
            ]
        dec.append(_head(widths[0], c, g))
        self.decoder = nn.Sequential(*dec)

    def pad(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H', W'), sides rounded up to multiples of f (edge replicated)."""
        _, _, h, w = x.shape
        if (h, w) != tuple(self.arch.image_shape[1:]):
            raise ValueError(
                f"this autoencoder encodes {self.arch.image_shape[1]}x{self.arch.image_shape[2]} "
                f"images, got {h}x{w}"
            )
        ph, pw = self.arch.padded_size
        return F.pad(x, (0, pw - w, 0, ph - h), mode="replicate") if (ph, pw) != (h, w) else x

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, C, H, W) in the data range -> mu, logvar (B, c, H'/f, W'/f), float32."""
        mu, logvar = self.encoder(self.pad(x)).float().chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # as Rombach et al.'s DiagonalGaussianDistribution

    def decode(self, z: Tensor) -> Tensor:
        """Latents (B, c, h, w) -> images (B, C, H, W), the padding cropped."""
        _, h, w = self.arch.image_shape
        return self.decoder(z)[..., :h, :w]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        z = mu
        if self.training:  # reparameterisation trick (Kingma & Welling 2014, sec. 2.4)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode(z.to(x.dtype)), mu, logvar

    def config(self) -> dict[str, Any]:
        d = asdict(self.arch)
        d["image_shape"] = list(d["image_shape"])
        return {"kind": CONFIG_KIND, **d}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Autoencoder:
        return cls(AutoencoderArch.from_dict(config))


# --- KL of a diagonal Gaussian from N(0, I): Kingma & Welling 2014, appendix B ---
#   -D_KL(q || p) = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-image KL(N(mu, sigma^2) || N(0, I)), summed over the latent elements: (B,)."""
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1)


# --- The autoencoder's loss: reconstruction + a slight KL term (Rombach et al. 2022, sec. 3
# and appendix G: "a slight KL-penalty", weight ~1e-6 there against a perceptual + GAN loss) ---
def autoencoder_loss(x: Tensor, x_hat: Tensor, mu: Tensor, logvar: Tensor, *, kl_weight: float):
    """(total, reconstruction MSE, KL per latent element), all scalars in float32. The KL is
    averaged per latent element so that kl_weight does not depend on the image size."""
    mse = F.mse_loss(x_hat.float(), x.float())
    kl = kl_divergence(mu, logvar).mean() / mu[0].numel()
    return mse + kl_weight * kl, mse, kl


def scale_factor(means: Tensor) -> float:
    """1 / std of the latent means over the training set (Rombach et al. 2022, sec. 4.3.2 and
    the "scale_factor = 0.18215" of their released configs): scaled latents have unit variance,
    the variance the diffusion schedule assumes of its data."""
    return float(1.0 / means.double().std())
