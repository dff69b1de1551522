"""Frozen dataclasses that hold every default, plus TOML loading and dotted overrides.

This package imports the standard library only (no torch), so `difflab --help` stays fast.
"""

from difflab.config.classifier import ClassifierConfig
from difflab.config.loading import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
)
from difflab.config.presets import PRESETS
from difflab.config.schema import (
    DataConfig,
    DiffusionConfig,
    EvalConfig,
    ModelConfig,
    NotifyConfig,
    RunConfig,
    SampleConfig,
    TrainConfig,
)

__all__ = [
    "PRESETS",
    "ClassifierConfig",
    "ConfigError",
    "DataConfig",
    "DiffusionConfig",
    "EvalConfig",
    "ModelConfig",
    "NotifyConfig",
    "RunConfig",
    "SampleConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]
