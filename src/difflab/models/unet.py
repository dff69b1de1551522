"""The difflab UNet: a noise-prediction network eps_theta(x_t, t) for small images.

Shape of the network (one skip per level, which keeps it cheap on a CPU):

    stem 3x3 conv -> level 0 blocks -> down -> level 1 blocks -> down -> ... -> middle blocks
    ... -> up -> concat skip -> level 1 blocks -> up -> concat skip -> level 0 blocks
    -> GroupNorm -> SiLU -> 3x3 conv (zero-initialised: the untrained model predicts 0)

Sizes need not be powers of two: downsampling rounds up (7 -> 4) and upsampling resizes to
the skip's exact size, so 28 -> 14 -> 7 -> 4 -> 7 -> 14 -> 28 works as well as 32 -> 16 -> 8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from difflab.models.blocks import Downsample, ResBlock, SelfAttention, Upsample, group_norm, zero_
from difflab.models.embedding import TimeEmbedding

CONFIG_KIND = "difflab.UNet"


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a UNet's architecture (stored in model.json)."""

    in_channels: int
    channels: tuple[int, ...]  # width of each level, highest resolution first
    blocks: tuple[int, ...]  # residual blocks per level (same count on the way up)
    attention_levels: tuple[int, ...] = ()  # level indices with self-attention after each block
    mid_blocks: int = 1
    mid_attention: bool = False
    out_channels: int | None = None  # default: in_channels
    freq_dim: int | None = None  # sinusoidal width; default channels[0]
    emb_dim: int | None = None  # time-embedding width; default 4 * channels[0]
    norm_groups: int = 32
    head_dim: int = 64
    dropout: float = 0.0
    zero_init_blocks: bool = True
    # Class-conditional when > 0: a learned embedding of num_classes + 1 entries (the last is
    # the "null" class of classifier-free guidance, Ho & Salimans 2022) added to the time one.
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if not self.channels or len(self.channels) != len(self.blocks):
            raise ValueError(
                f"channels {self.channels} and blocks {self.blocks} need one entry per level"
            )
        if min(self.channels) < 1 or min(self.blocks) < 1 or self.mid_blocks < 0:
            raise ValueError("channels and blocks must be >= 1 and mid_blocks >= 0")
        bad = [i for i in self.attention_levels if not 0 <= i < len(self.channels)]
        if bad:
            raise ValueError(f"attention_levels {bad} are not levels of {len(self.channels)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: unconditional), got {self.num_classes}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - {"kind"}
        if unknown:
            raise ValueError(f"unknown UNet config keys {sorted(unknown)}; known: {sorted(known)}")
        if d.get("kind", CONFIG_KIND) != CONFIG_KIND:
            raise ValueError(f"model config is of kind {d['kind']!r}, expected {CONFIG_KIND!r}")
        args = {k: v for k, v in d.items() if k != "kind"}
        for key in ("channels", "blocks", "attention_levels"):
            if key in args:
                args[key] = tuple(args[key])
        return cls(**args)


class UNet(nn.Module):
    """eps_theta(x_t, t): (B, C, H, W) images and (B,) timesteps -> (B, C_out, H, W)."""

    def __init__(self, config: UNetConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = UNetConfig(**kwargs)
        elif kwargs:
            raise ValueError("pass either a UNetConfig or keyword arguments, not both")
        self.cfg = cfg = config
        ch = cfg.channels
        emb_dim = cfg.emb_dim or 4 * ch[0]
        self.time_embed = TimeEmbedding(cfg.freq_dim or ch[0], emb_dim)
        if cfg.num_classes:  # created only when conditional: unconditional weights stay the same
            self.class_embed = nn.Embedding(cfg.num_classes + 1, emb_dim)
        self.stem = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(self._level(i, ch[i], ch[i], emb_dim) for i in range(len(ch)))
        self.downsample = nn.ModuleList(Downsample(ch[i], ch[i + 1]) for i in range(len(ch) - 1))
        self.mid = self._mid(ch[-1], emb_dim)
        self.upsample = nn.ModuleList(Upsample(ch[i + 1], ch[i]) for i in range(len(ch) - 1))
        self.up = nn.ModuleList(self._level(i, 2 * ch[i], ch[i], emb_dim) for i in range(len(ch)))
        self.out_norm = group_norm(ch[0], cfg.norm_groups)
        self.out_conv = zero_(nn.Conv2d(ch[0], cfg.out_channels or cfg.in_channels, 3, padding=1))
        # Activations inside the network are laid out channels_last (NHWC), where the CPU's
        # convolutions are fastest (see blocks.GroupNorm); inputs and outputs stay NCHW.
        # Not part of the architecture: set False to compare (bench_levers does).
        self.channels_last = True

    def _res(self, in_ch: int, out_ch: int, emb_dim: int) -> ResBlock:
        c = self.cfg
        return ResBlock(
            in_ch, out_ch, emb_dim, groups=c.norm_groups, dropout=c.dropout,
            zero_init=c.zero_init_blocks,
        )  # fmt: skip

    def _attn(self, ch: int) -> SelfAttention:
        return SelfAttention(ch, head_dim=min(self.cfg.head_dim, ch), groups=self.cfg.norm_groups)

    def _level(self, i: int, in_ch: int, out_ch: int, emb_dim: int) -> nn.ModuleList:
        """Residual blocks of one level; the first maps in_ch -> out_ch."""
        layers = nn.ModuleList()
        for b in range(self.cfg.blocks[i]):
            layers.append(self._res(in_ch if b == 0 else out_ch, out_ch, emb_dim))
            if i in self.cfg.attention_levels:
                layers.append(self._attn(out_ch))
        return layers

    def _mid(self, ch: int, emb_dim: int) -> nn.ModuleList:
        layers = nn.ModuleList()
        for _ in range(self.cfg.mid_blocks):
            layers.append(self._res(ch, ch, emb_dim))
            if self.cfg.mid_attention:
                layers.append(self._attn(ch))
        return layers

    @staticmethod
    def _run(layers: nn.ModuleList, x: Tensor, emb: Tensor) -> Tensor:
        for layer in layers:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x

    @property
    def null_class(self) -> int | None:
        """The label that means "no class" (classifier-free guidance); None if unconditional."""
        return self.cfg.num_classes if self.cfg.num_classes else None

    def forward(self, x_t: Tensor, t: Tensor | int | float, y: Tensor | None = None) -> Tensor:
        """y: (B,) int64 class labels in [0, num_classes] (num_classes = null); a conditional
        model given no y uses the null class, an unconditional one refuses y."""
        if x_t.ndim != 4 or x_t.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"expected images (B, {self.cfg.in_channels}, H, W), got {tuple(x_t.shape)}"
            )
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        emb = self.time_embed(t)
        if self.cfg.num_classes:
            if y is None:
                y = torch.full((x_t.shape[0],), self.cfg.num_classes, device=x_t.device)
            emb = emb + self.class_embed(y)
        elif y is not None:
            raise ValueError("this UNet is unconditional (num_classes 0): it takes no labels")
        emb = emb.to(x_t.dtype)
        h = self.stem(x_t)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        skips = []
        for i, level in enumerate(self.down):
            h = self._run(level, h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self._run(self.mid, h, emb)
        for i in reversed(range(len(self.up))):
            if i < len(self.upsample):
                h = self.upsample[i](h, skips[i].shape[-2:])
            h = self._run(self.up[i], torch.cat([h, skips[i]], dim=1), emb)
        return self.out_conv(nn.functional.silu(self.out_norm(h))).contiguous()

    def config(self) -> dict[str, Any]:
        """JSON-ready dict that `UNet.from_config` turns back into the same architecture."""
        d = asdict(self.cfg)
        for key in ("channels", "blocks", "attention_levels"):
            d[key] = list(d[key])
        return {"kind": CONFIG_KIND, **d}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNet:
        """Rebuild (untrained) from `config()`; load weights separately."""
        return cls(UNetConfig.from_dict(config))
