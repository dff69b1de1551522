"""Flags for the sampling options (`--sampler --steps --eta --n --seed ...`), from SampleConfig."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing

from difflab.config import SampleConfig
from difflab.config.loading import coerce_value

log = logging.getLogger("difflab")


# The fields a run folder's own config.json supplies when a flag is not given: how the run's
# quickstart sampled and scored it, so `difflab eval RUN` reproduces that figure by default.
# n and batch_size stay each command's own (a grid is 64 images, an evaluation 2048).
RUN_SUPPLIED = tuple(
    f.name for f in dataclasses.fields(SampleConfig) if f.name not in ("n", "batch_size")
)


def add_sampling_arguments(parser: argparse.ArgumentParser, **defaults: object) -> None:
    """One flag per SampleConfig field; `defaults` replace the dataclass defaults (e.g. n=2048).

    A flag left out is None here: `sample_config` fills it from the run's recorded sampling
    (RUN_SUPPLIED) when the target is a run with one, else from these defaults."""
    group = parser.add_argument_group(
        "sampling options (a run folder or model file samples as its run did, "
        "e.g. the headline's guidance and steps, unless a flag says otherwise)"
    )
    fallbacks = {}
    for f in dataclasses.fields(SampleConfig):
        default = defaults.get(f.name, f.default)
        fallbacks[f.name] = default
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f"sample_{f.name}",
            default=None,
            metavar="V",
            help=f"{f.metadata.get('help', '')} (default: "
            + ("the run's, else " if f.name in RUN_SUPPLIED else "")
            + f"{default})",
        )
    parser.set_defaults(sampling_fallbacks=fallbacks)
    group.add_argument(
        "--guide",
        metavar="PATH",
        default=None,
        help="autoguidance: use this run folder or model file as the guide instead of the "
        "run's own RUN/guide (same image size and noise schedule; any architecture, e.g. a "
        "smaller network or `difflab ema RUN --step T --out DIR`)",
    )


def recorded_sampling(run_config: dict | None) -> SampleConfig | None:
    """The `sample` section of a run's config (as saved in config.json or model.json), or None
    when there is none or it no longer reads (a run from an older difflab: flags' defaults)."""
    from difflab.config.loading import config_from_dict

    section = (run_config or {}).get("sample")
    if not isinstance(section, dict):
        return None
    try:
        return config_from_dict(section, SampleConfig, where="sample")
    except (ValueError, TypeError) as err:
        log.warning("the run's recorded sampling settings do not read (%s): using defaults", err)
        return None


def sample_config(args: argparse.Namespace, recorded: SampleConfig | None = None) -> SampleConfig:
    """The SampleConfig the flags describe (validated; errors name the flag). A flag not given
    takes the run's `recorded` value (RUN_SUPPLIED fields), else the command's default."""
    hints = typing.get_type_hints(SampleConfig)
    fallbacks = getattr(args, "sampling_fallbacks", {})
    values, inherited = {}, []
    for f in dataclasses.fields(SampleConfig):
        given = getattr(args, f"sample_{f.name}", None)
        if given is None and recorded is not None and f.name in RUN_SUPPLIED:
            value = getattr(recorded, f.name)
            if value != fallbacks.get(f.name, f.default):
                inherited.append(f"--{f.name.replace('_', '-')} {value}")
        else:
            value = given if given is not None else fallbacks.get(f.name, f.default)
        values[f.name] = coerce_value(value, hints[f.name], f"sample.{f.name}")
    try:
        sample = SampleConfig(**values)
    except ValueError as err:
        raise ValueError(str(err).replace("--sample.", "--")) from err
    if inherited:
        log.info("sampling as the run did: %s (a flag overrides)", " ".join(inherited))
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
