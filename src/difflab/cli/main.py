"""`difflab` entry point: builds the sub-command parsers and dispatches.

Every sub-command lives in its own module with `add_parser(subparsers)` and `run(args) -> int`.
Those modules import torch and friends inside `run`, so `difflab --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from difflab import __version__

# name -> module that implements it, in the order --help lists them.
COMMANDS = {
    "quickstart": "difflab.cli.quickstart",
    "train": "difflab.cli.train",
    "sample": "difflab.cli.sample",
    "eval": "difflab.cli.evaluate",
    "ema": "difflab.cli.ema",
    "classifier": "difflab.cli.classifier",
    "autoencoder": "difflab.cli.autoencoder",
    "runs": "difflab.cli.runs",
    "board": "difflab.cli.board",
    "data": "difflab.cli.data",
    "bench": "difflab.cli.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="difflab",
        description="Train, sample and evaluate diffusion models on small images.",
        epilog="Run `difflab COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"difflab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        importlib.import_module(module_name).add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        # User errors (bad config, missing file, bad data) get one clear line, not a traceback.
        if args.verbose:
            raise
        print(f"difflab {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        _end_distributed()


def _end_distributed() -> None:
    """Under accelerate launch / torchrun: leave the process group before exit (only if one
    was started: a plain command never imports torch.distributed for this)."""
    if "torch.distributed" in sys.modules:
        from difflab.training import end_process_group

        end_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
