"""Flags for the sampling options (`--sampler --steps --eta --n --seed ...`), from SampleConfig."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing

from difflab.config import SampleConfig
from difflab.config.loading import coerce_value

log = logging.getLogger("difflab")


def add_sampling_arguments(parser: argparse.ArgumentParser, **defaults: object) -> None:
    """One flag per SampleConfig field; `defaults` replace the dataclass defaults (e.g. n=2048)."""
    group = parser.add_argument_group("sampling options")
    for f in dataclasses.fields(SampleConfig):
        default = defaults.get(f.name, f.default)
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f"sample_{f.name}",
            default=default,
            metavar="V",
            help=f"{f.metadata.get('help', '')} (default: {default})",
        )


def sample_config(args: argparse.Namespace) -> SampleConfig:
    """The SampleConfig the flags describe (validated; errors name the flag)."""
    hints = typing.get_type_hints(SampleConfig)
    values = {
        f.name: coerce_value(getattr(args, f"sample_{f.name}"), hints[f.name], f"sample.{f.name}")
        for f in dataclasses.fields(SampleConfig)
    }
    try:
        return SampleConfig(**values)
    except ValueError as err:
        raise ValueError(str(err).replace("--sample.", "--")) from err


def warn_if_steps_ignored(sample: SampleConfig) -> None:
    """ddpm_skip's model calls come from its skip schedule: say so when steps was changed."""
    default_steps = next(f.default for f in dataclasses.fields(SampleConfig) if f.name == "steps")
    if sample.sampler == "ddpm_skip" and sample.steps != default_steps:
        log.warning(
            "ddpm_skip ignores steps=%d: the skip schedule %r sets its model calls "
            "(choose it with --sample.skip, or --skip in `difflab sample`)",
            sample.steps, sample.skip,
        )  # fmt: skip


def plan_for(sample: SampleConfig, *, low: float, high: float, bf16: bool = True):
    """The SamplingPlan of a SampleConfig, for data in [low, high]."""
    from difflab.generation import SamplingPlan

    warn_if_steps_ignored(sample)
    return SamplingPlan(
        sampler=sample.sampler,
        steps=sample.steps,
        skip=sample.skip,
        eta=sample.eta,
        batch_size=sample.batch_size,
        clip_x0=(low, high) if sample.clip_x0 else None,
        bf16=bf16,
    )
