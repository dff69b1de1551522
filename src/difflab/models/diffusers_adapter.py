"""Train and sample a diffusers `UNet2DModel` through difflab's `model(x_t, t) -> eps` interface.

diffusers is optional: it is imported inside the functions here, never at module import.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

CONFIG_KIND = "diffusers.UNet2DModel"


class DiffusersUNet(nn.Module):
    """Wraps a diffusers `UNet2DModel` so that forward(x_t, t) returns the sample tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def null_class(self) -> int | None:
        """The null label of classifier-free guidance: diffusers' last class embedding."""
        n = self.model.config.get("num_class_embeds")
        return n - 1 if n else None

    def forward(self, x_t: Tensor, t: Tensor | int | float, y: Tensor | None = None) -> Tensor:
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        null = self.null_class
        if null is not None and y is None:
            y = torch.full((x_t.shape[0],), null, device=x_t.device)
        elif null is None and y is not None:
            raise ValueError("this UNet2DModel is unconditional: it takes no labels")
        return self.model(x_t, t, class_labels=y).sample

    def config(self) -> dict[str, Any]:
        """JSON-ready architecture (diffusers' own config, plus a `kind` tag)."""
        cfg = {k: v for k, v in dict(self.model.config).items() if not k.startswith("_")}
        return {"kind": CONFIG_KIND, **_jsonable(cfg)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DiffusersUNet:
        if config.get("kind") != CONFIG_KIND:
            raise ValueError(f"model config is of kind {config.get('kind')!r}, not {CONFIG_KIND!r}")
        return build_diffusers_unet({k: v for k, v in config.items() if k != "kind"})


def _jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def diffusers_example_config(
    *, sample_size: int = 28, in_channels: int = 1, width: int = 32
) -> dict[str, Any]:
    """The UNet2DModel of diffusers' unconditional training example, scaled to small images.

    The example (examples/unconditional_image_generation/train_unconditional.py) uses six
    levels, widths (128, 128, 256, 256, 512, 512), two ResNet layers per level and attention
    at the second-lowest resolution. 28x28 only halves twice cleanly (diffusers' upsampling
    doubles, so 7 -> 4 -> 8 would not meet the 7x7 skip), so here: three levels (28, 14, 7),
    widths (w, 2w, 4w), two layers per level, attention at 14x14, default everything else.
    """
    if width < 8 or width % 8:
        raise ValueError(f"width must be a positive multiple of 8, got {width}")
    return {
        "sample_size": sample_size,
        "in_channels": in_channels,
        "out_channels": in_channels,
        "layers_per_block": 2,
        "block_out_channels": [width, 2 * width, 4 * width],
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
        "norm_num_groups": math.gcd(32, width),
    }


def build_diffusers_unet(config: dict[str, Any] | None = None, **kwargs: Any) -> DiffusersUNet:
    """A wrapped `UNet2DModel(**config)`; default: `diffusers_example_config(**kwargs)`."""
    try:
        from diffusers import UNet2DModel
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("diffusers is needed here: pip install 'difflab[diffusers]'") from err
    if config is None:
        config = diffusers_example_config(**kwargs)
    elif kwargs:
        raise ValueError("pass either a config dict or keyword arguments, not both")
    return DiffusersUNet(UNet2DModel(**config))
