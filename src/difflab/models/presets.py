"""Named UNet architectures.

Measure any of them with `python benchmarks/bench_unet.py --presets all` (parameters, GFLOP
per training image, images/s and MFU on this machine). On the 2-core CPU (torch 2.13) train
in bf16 autocast; the UNet lays its activations out channels_last inside (UNet.channels_last),
with GroupNorm computed in NCHW, which `benchmarks/bench_levers.py` measures.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from difflab.models.unet import UNet, UNetConfig

# Every preset is a UNetConfig without in_channels (given at build time).
UNET_PRESETS: dict[str, dict[str, Any]] = {
    # Tests and smoke runs: a training step takes milliseconds on 8x8 and 28x28 images.
    "tiny": dict(
        channels=(8, 16), blocks=(1, 1), attention_levels=(1,), mid_blocks=1,
        norm_groups=4, head_dim=8,
    ),
    # The speed-critical design for a 2-core CPU: 32 channels at 28x28 (thin, where convs are
    # costly per channel), doubling per level down to 256 at 4x4 (7 -> 4 rounds up), where
    # parameters are cheap in FLOPs (32 FLOPs per weight per image against 1568 at 28x28),
    # one residual block per level and attention only in the 4x4 middle (16 tokens).
    # ~6.7M parameters, ~1.45 GFLOP per training image (diffusers' 28x28 example: 2.3+).
    "fmnist-cpu": dict(
        channels=(32, 64, 128, 256), blocks=(1, 1, 1, 1), attention_levels=(), mid_blocks=1,
        mid_attention=True, norm_groups=32, head_dim=64,
    ),
    # Reference scale for Fashion-MNIST (~15M parameters), attention at 7x7 and in the middle.
    "fmnist": dict(
        channels=(64, 128, 256), blocks=(2, 2, 2), attention_levels=(2,), mid_blocks=3,
        mid_attention=True, norm_groups=32, head_dim=64,
    ),
    # CIFAR-10 32x32 at DDPM scale (Ho et al. 2020 used 35.7M): levels 32, 16, 8, 4 with
    # self-attention at 16x16 and 8x8.
    "cifar10": dict(
        channels=(128, 256, 256, 256), blocks=(2, 2, 2, 2), attention_levels=(1, 2),
        mid_blocks=2, mid_attention=True, norm_groups=32, head_dim=64,
    ),
}  # fmt: skip


def build_unet(preset: str, *, in_channels: int, dropout: float = 0.0, **overrides: Any) -> UNet:
    """Build a named UNet preset for images with `in_channels` channels.

    `overrides` replace single UNetConfig fields (e.g. `channels=(32, 64)`) for experiments.
    """
    if preset not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset {preset!r}; choose one of {', '.join(UNET_PRESETS)}")
    config = UNetConfig(in_channels=in_channels, dropout=dropout, **UNET_PRESETS[preset])
    return UNet(replace(config, **overrides) if overrides else config)
