"""`difflab quickstart`: the main job in one command — train, sample, evaluate."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from difflab.cli.config_flags import add_config_arguments, resolve_config

log = logging.getLogger("difflab")

DESCRIPTION = """\
Train a DDPM on the default dataset (Fashion-MNIST), draw a sample grid, and measure
FMNIST-FID and KID of --eval.n samples against the shipped classifier's reference, with the
real-data floor at the same n. With the default --preset quick this takes a few minutes on a
2-core CPU; any training option can be changed (see `difflab train --help`)."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="train -> sample -> evaluate in one go",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-progress", action="store_true", help="plain log lines, no bars")
    add_config_arguments(parser)
    parser.set_defaults(handler=run, preset="quick")


def run(args: argparse.Namespace) -> int:
    from difflab.experiment import quickstart

    code, report = quickstart(resolve_config(args), progress=not args.no_progress)
    if report is not None:
        json.dump(report, sys.stdout, indent=2)
        print()
    return code
