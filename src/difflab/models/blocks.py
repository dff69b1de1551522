"""UNet building blocks: residual block with time conditioning, resampling, self-attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that takes channels_last activations without PyTorch's slow CPU path.

    On the 2-core CPU (torch 2.13, bf16, batch 256) a 3x3 convolution runs 1.4-2.7x faster on
    channels_last activations, but GroupNorm's channels_last CPU kernel is ~6x slower than its
    NCHW one; two layout copies around an NCHW GroupNorm cost far less than that loss
    (`python benchmarks/bench_levers.py`). Other devices use their own kernel unchanged.
    Same parameters and state_dict as nn.GroupNorm.
    """

    def forward(self, x: Tensor) -> Tensor:
        channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        if x.device.type == "cpu" and channels_last:
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def group_norm(channels: int, groups: int) -> GroupNorm:
    """GroupNorm with the largest group count <= `groups` that divides `channels`."""
    return GroupNorm(math.gcd(groups, channels), channels)


def zero_(module: nn.Module) -> nn.Module:
    """Zero a module's parameters in place (so it starts as 'adds nothing')."""
    for p in module.parameters():
        p.detach().zero_()
    return module


# --- Residual block with scale-shift time conditioning: Dhariwal & Nichol 2021 (ADM,
# "AdaGN", section 3 and appendix), which builds on Ho et al. 2020's Wide-ResNet block.
#   h = conv1(SiLU(GN(x)));  h = GN(h) * (1 + scale(emb)) + shift(emb)
#   out = skip(x) + conv2(dropout(SiLU(h)))
# conv2 starts at zero (ADM's `zero_module`) so each block starts as the identity on its skip
# path: the untrained network is a shallow, well-conditioned function and deep stacks train
# stably without normalising the residual sum.
class ResBlock(nn.Module):
    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_dim: int,
        *,
        groups: int = 32,
        dropout: float = 0.0,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        if zero_init:
            zero_(self.conv2)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Stride-2 3x3 conv (Ho et al. 2020); odd sizes round up: 7 -> 4."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to the skip's exact size, then a 3x3 conv.

    Resizing to the target size (not a fixed factor 2) is what makes odd sizes work:
    7 -> 4 on the way down comes back 4 -> 7 here.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.conv(nearest_upsample(x, size))


def nearest_upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """F.interpolate(x, size, mode="nearest"); under torch.compile written as a broadcast for
    the sizes the UNet uses: 2n, or 2n - 1 after an odd size was rounded up on the way down.

    Why not F.interpolate: torch.compile (inductor, torch 2.13 CPU) zeroed the gradient through
    it inside the whole UNet under bf16 autocast, so nothing below the top level learned
    (tests/test_compiled.py); the broadcast has a plain backward (a sum).
    Nearest picks source floor(d * n / out); for out = 2n that is floor(d / 2), and for
    out = 2n - 1 it is floor(d / 2) too (d <= 2n - 2), so repeating each pixel twice and
    cropping to `size` is the same map.
    """
    b, c, h, w = x.shape
    out_h, out_w = int(size[0]), int(size[1])
    eager = not torch.compiler.is_compiling()  # eager, F.interpolate is 7% faster per step
    if eager or out_h not in (2 * h, 2 * h - 1) or out_w not in (2 * w, 2 * w - 1):
        return F.interpolate(x, size=(out_h, out_w), mode="nearest")
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # repeat in (B, H, W, C) memory order, so the result stays channels_last
        nhwc = x.permute(0, 2, 3, 1)[:, :, None, :, None]
        doubled = nhwc.expand(b, h, 2, w, 2, c).reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
    else:
        doubled = x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)
    return doubled[:, :, :out_h, :out_w]


# --- Multi-head self-attention over pixels: Vaswani et al. 2017 eq. 1,
# softmax(Q K^T / sqrt(d)) V, placed in the UNet as in Ho et al. 2020 (16x16 on CIFAR-10).
# Pre-norm, residual, output projection zero-initialised (starts as identity).
class SelfAttention(nn.Module):
    def __init__(self, channels: int, *, head_dim: int = 64, groups: int = 32) -> None:
        super().__init__()
        if channels % head_dim:
            raise ValueError(
                f"attention: {channels} channels do not split into heads of {head_dim}"
            )
        self.heads = channels // head_dim
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv2d(channels, channels, 1))

    def split_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, 3C, H, W) -> three (B, heads, H*W, head_dim) tensors."""
        b, c3, h, w = x.shape
        x = x.reshape(b, 3, self.heads, c3 // (3 * self.heads), h * w).transpose(-1, -2)
        return x[:, 0], x[:, 1], x[:, 2]

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.split_heads(self.qkv(self.norm(x)))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, d)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)
