"""Noise-prediction networks (the difflab UNet, a diffusers adapter) and model utilities.

`import difflab.models` imports torch but no optional package: diffusers is imported only by
`difflab.models.diffusers_adapter` functions when called.
"""

from difflab.models.presets import UNET_PRESETS, build_unet
from difflab.models.unet import UNet, UNetConfig

__all__ = ["UNET_PRESETS", "UNet", "UNetConfig", "build_unet"]
