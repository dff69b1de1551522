"""Flags for the sampling options (`--sampler --steps --eta --n --seed ...`), from SampleConfig."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from difflab.config import SampleConfig
from difflab.config.loading import coerce_value


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


def plan_for(sample: SampleConfig, *, low: float, high: float, bf16: bool = True):
    from difflab.generation import SamplingPlan

    return SamplingPlan(
        sampler=sample.sampler,
        steps=sample.steps,
        eta=sample.eta,
        batch_size=sample.batch_size,
        clip_x0=(low, high) if sample.clip_x0 else None,
        bf16=bf16,
    )
