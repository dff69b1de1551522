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
    group.add_argument(
        "--guide",
        metavar="PATH",
        default=None,
        help="autoguidance: use this run folder or model file as the guide instead of the "
        "run's own RUN/guide (same image size and noise schedule; any architecture, e.g. a "
        "smaller network or `difflab ema RUN --step T --out DIR`)",
    )


def sample_config(args: argparse.Namespace) -> SampleConfig:
    """The SampleConfig the flags describe (validated; errors name the flag)."""
    hints = typing.get_type_hints(SampleConfig)
    values = {
        f.name: coerce_value(getattr(args, f"sample_{f.name}"), hints[f.name], f"sample.{f.name}")
        for f in dataclasses.fields(SampleConfig)
    }
    try:
        sample = SampleConfig(**values)
    except ValueError as err:
        raise ValueError(str(err).replace("--sample.", "--")) from err
    warn_if_steps_ignored(sample)
    if getattr(args, "guide", None) and sample.autoguidance == 1.0:
        log.warning("--guide %s is not used at --autoguidance 1 (no guidance)", args.guide)
    return sample


def warn_if_steps_ignored(sample: SampleConfig) -> None:
    """A sampler that does not read `steps` (ddpm_skip: its skip schedule sets the model
    calls) says so when steps was changed from its default."""
    from difflab.samplers import sampler_spec

    default_steps = next(f.default for f in dataclasses.fields(SampleConfig) if f.name == "steps")
    spec = sampler_spec(sample.sampler)
    if "steps" not in spec.reads and sample.steps != default_steps:
        log.warning(
            "%s ignores --steps %d; it reads %s",
            sample.sampler, sample.steps, ", ".join(f"--{name}" for name in spec.reads),
        )  # fmt: skip
