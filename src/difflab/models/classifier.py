"""A small ResNet whose pooled features drive FID/KID (difflab's "domain FID").

Inputs live in the diffusion data range (default -0.5..0.5), any channel count and any size
(global average pooling makes the feature vector size-independent), so generated samples go
straight in without rescaling. The named layer `pool` (global average pooling before the head)
gives the feature vector; `features(x)` returns it directly.

Architecture: pre-activation-free ResNet (He et al. 2016, "Deep Residual Learning", Fig. 2
basic block) with one block per stage, widths doubling as the resolution halves. `stem_stride`
2 halves the resolution in the stem (about 4x fewer operations, what makes CPU training
fast); the default 1 is the shipped Fashion-MNIST model's layout.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

FEATURE_LAYER = "pool"


class ResBlock(nn.Module):
    """Basic residual block: conv-BN-ReLU-conv-BN plus a (projected) shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + self.shortcut(x))


class GlobalAvgPool(nn.Module):
    """(B, C, H, W) -> (B, C): the feature layer that FID/KID hooks."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class ImageClassifier(nn.Module):
    """ResNet classifier; `features(x)` gives the pooled (B, widths[-1]) feature vector."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        n_classes: int = 10,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        dropout: float = 0.1,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if not widths or any(w <= 0 for w in widths):
            raise ValueError(f"widths must be positive channel counts, got {widths!r}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        self._config = {
            "in_channels": in_channels,
            "n_classes": n_classes,
            "widths": list(widths),
            "dropout": dropout,
        }
        if stem_stride != 1:  # absent from the shipped model's config: its JSON stays valid
            self._config["stem_stride"] = stem_stride
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks, c_prev = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(ResBlock(c_prev, width, stride=1 if i == 0 else 2))
            c_prev = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = GlobalAvgPool()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_prev, n_classes)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: Tensor) -> Tensor:
        """Pooled features (B, feature_dim) of images in the training data range."""
        return self.pool(self.blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; `from_config(config())` rebuilds the same model."""
        return dict(self._config, widths=list(self._config["widths"]))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImageClassifier:
        known = {"in_channels", "n_classes", "widths", "dropout", "stem_stride"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(
                f"unknown classifier config keys {sorted(unknown)}; known: {sorted(known)}"
            )
        kwargs = dict(config)
        if "widths" in kwargs:
            kwargs["widths"] = tuple(kwargs["widths"])
        return cls(**kwargs)


FashionClassifier = ImageClassifier  # the shipped model's JSON names this class
