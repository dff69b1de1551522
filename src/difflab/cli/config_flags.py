"""Generate `--section.option` flags from the config dataclasses, and read them back."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Any

from difflab.config import PRESETS, RunConfig, config_to_dict, load_config

_SENTINEL = object()


def _flags(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(flag, dotted key, help) for every leaf field of a config dataclass."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        dotted = f"{prefix}{f.name}"
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += _flags(tp, dotted + ".")
        else:
            help_text = f.metadata.get("help", "")
            out.append(
                ("--" + dotted.replace("_", "-"), dotted, f"{help_text} (default: {f.default})")
            )
    return out


def add_config_arguments(
    parser: argparse.ArgumentParser, *, sections: tuple[str, ...] | None = None
) -> None:
    """--config, --preset, --dry-run and one flag per config field (all sections by default)."""
    parser.add_argument(
        "--config", metavar="TOML", help="TOML file of settings (sections as below)"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="named starting point; --config and flags override it",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the resolved config as JSON and exit"
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for flag, dotted, help_text in _flags(RunConfig):
        section = dotted.split(".")[0] if "." in dotted else "run"
        if sections is not None and section not in sections:
            continue
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{section} options")
        groups[section].add_argument(
            flag, dest=f"cfg:{dotted}", default=_SENTINEL, metavar="V", help=help_text
        )


def given_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config flags the user actually gave, as {dotted key: raw value}."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg:") and v is not _SENTINEL}


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Defaults < --preset < --config < flags. Prints and exits on --dry-run."""
    overrides = given_overrides(args)
    config = load_config(args.config, preset=args.preset, overrides=overrides)
    if args.dry_run:
        json.dump(config_to_dict(config), sys.stdout, indent=2)
        print()
        raise SystemExit(0)
    return config


def flag_value(args: argparse.Namespace, dotted: str) -> Any:
    """The raw value given for a config flag, or None when the user did not give it."""
    value = getattr(args, f"cfg:{dotted}", _SENTINEL)
    return None if value is _SENTINEL else value


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, title: str) -> None:
    """One `--field-name` flag per field of a flat config dataclass (e.g. ClassifierConfig),
    plus --dry-run; read them back with `dataclass_from_args`."""
    parser.add_argument(
        "--dry-run", action="store_true", help="print the resolved config as JSON and exit"
    )
    group = parser.add_argument_group(title)
    for flag, dotted, help_text in _flags(cls):
        group.add_argument(
            flag, dest=f"cfg:{dotted}", default=_SENTINEL, metavar="V", help=help_text
        )


def dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Defaults < flags, values converted to the fields' types. Prints and exits on --dry-run."""
    from difflab.config import config_from_dict

    config = config_from_dict(given_overrides(args), cls)
    if args.dry_run:
        json.dump(config_to_dict(config), sys.stdout, indent=2)
        print()
        raise SystemExit(0)
    return config
