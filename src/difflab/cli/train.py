"""`difflab train`: DDPM training on a dataset, into a new run folder (or resuming one)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from difflab.cli.config_flags import add_config_arguments, given_overrides, resolve_config

log = logging.getLogger("difflab")

DESCRIPTION = """\
Train a noise-prediction UNet (DDPM, Ho et al. 2020) on a dataset. A run folder
runs/NNNNN-<dataset>-<preset>/ is created first and receives the resolved config, the code
that ran (git commit + diff), metrics, a sample grid per epoch, resumable checkpoints and,
at the end, model.safetensors + model.json (EMA weights). Kill it at any moment and continue
with `difflab train --resume RUN_DIR`; the result is the same run."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="train a DDPM (creates a run folder)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run exactly (its config.json is used)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument(
        "--lr-find",
        action="store_true",
        help="run the learning-rate range test instead of training and print "
        "the suggested --train.lr (no run folder is made)",
    )
    parser.add_argument("--no-progress", action="store_true", help="plain log lines, no bars")
    add_config_arguments(parser)
    parser.set_defaults(handler=run)


def report_summary(summary: dict, run_dir: Path, *, as_json: bool) -> int:
    """Print the summary (main process only); exit 1 when the loss went non-finite."""
    from difflab.training import process_rank

    if process_rank()[0] != 0:
        return 1 if summary["stop_reason"] == "nonfinite" else 0
    if as_json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    if summary["stop_reason"] == "nonfinite":
        from difflab.experiment import nonfinite_message

        log.error("%s", nonfinite_message(summary))
        return 1
    if summary["finished"]:
        log.info("done: %s (%d steps in %.0f s)", run_dir, summary["steps"], summary["seconds"])
    return 0  # stopped by a signal: the checkpoint is saved and --resume continues


def resume_config(run_dir: Path, args: argparse.Namespace):
    from difflab.config import config_from_dict
    from difflab.tracking.run_folder import read_run_config

    given = given_overrides(args)
    if given or args.config or args.preset:
        raise ValueError(
            f"--resume continues {run_dir} with its own config.json; drop "
            f"{', '.join(sorted(given)) or '--config/--preset'} (a changed run "
            "would not be the same run)"
        )
    config = config_from_dict(read_run_config(run_dir))
    if config.train.minutes:
        raise ValueError(
            f"{run_dir} was trained for a wall-clock budget (--train.minutes "
            f"{config.train.minutes:g}): its learning-rate schedule follows the clock, so it "
            "cannot be resumed exactly; its last checkpoint and model are in the run folder"
        )
    return config


def run(args: argparse.Namespace) -> int:
    from difflab.experiment import start_run_once, train_experiment

    if args.lr_find:
        from difflab.experiment import find_learning_rate

        found = find_learning_rate(resolve_config(args))
        json.dump(found if args.json else {"suggestion": found["suggestion"]}, sys.stdout)
        print()
        return 0
    if args.resume:
        run_dir = Path(args.resume)
        config = resume_config(run_dir, args)
        log.info("resuming %s", run_dir)
    else:
        config = resolve_config(args)
        run_dir = start_run_once(config)
        log.info("run folder: %s", run_dir)
    summary = train_experiment(
        config, run_dir, resume=run_dir if args.resume else None, progress=not args.no_progress
    )
    return report_summary(summary, run_dir, as_json=args.json)
