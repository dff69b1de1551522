"""`difflab autoencoder train`: the first stage of latent diffusion (Rombach et al. 2022).

    difflab autoencoder train --dataset fashion_mnist --out models/ae-f4c4 --minutes 5
    difflab train --latent models/ae-f4c4 ...      # diffusion on its scaled latents
    difflab autoencoder train --resume runs/00012-fashion_mnist-autoencoder

`train`'s flags are AutoencoderConfig's fields (config/autoencoder.py); the card goes to stdout
as JSON, the log to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from difflab.cli.config_flags import add_dataclass_arguments, dataclass_from_args, given_overrides
from difflab.config.autoencoder import AutoencoderConfig

log = logging.getLogger("difflab")

DESCRIPTION = """\
Train a small KL-regularised convolutional autoencoder (Rombach et al. 2022, sec. 3) on a data
set, with the Learner, in a run folder (checkpoints, metrics, `difflab runs`, the board), then
write it (model.safetensors + model.json, its card) into RUN/autoencoder and --out. The card
holds the reconstruction MSE, the FID of reconstructions beside the real-data floor (the best
FID a latent model decoded through it can reach), and the scale factor (1 / std of the training
latents, the role of Stable Diffusion's 0.18215) that `difflab train --latent` multiplies the
latents by. With --downsample 4 a 28x28 image becomes a 7x7 latent: 1/16 of the positions."""


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="train the autoencoder of latent diffusion",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="autoencoder_action", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="train one and write weights + card",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_arguments(train, AutoencoderConfig, title="autoencoder options")
    train.add_argument("--out", default=None, help="also write the autoencoder into this folder")
    train.add_argument("--runs-dir", default="runs", help="folder of run folders (default: runs)")
    train.add_argument(
        "--name", default=None, help="run name (default: NNNNN-<dataset>-autoencoder)"
    )
    train.add_argument(
        "--trackers", default="local", help="comma-separated: local, wandb, tensorboard"
    )
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted autoencoder run exactly"
    )
    train.add_argument("--no-progress", action="store_true", help="plain log lines, no bars")
    train.set_defaults(handler=run_train)
    return parser


def resume_config(run_dir: Path, args: argparse.Namespace) -> AutoencoderConfig:
    """The run's own config (checked against config.sha256); no config flag may change it."""
    from difflab.cli.train import check_run_config
    from difflab.experiment.autoencoder import config_from_run
    from difflab.tracking.run_folder import read_run_config

    if given_overrides(args):
        raise ValueError(
            f"--resume continues {run_dir} with its own config.json; drop "
            f"{', '.join('--' + k.replace('_', '-') for k in given_overrides(args))}"
        )
    check_run_config(run_dir)
    config = config_from_run(read_run_config(run_dir))
    if config.minutes:
        raise ValueError(
            f"{run_dir} was trained for a wall-clock budget (--minutes {config.minutes:g}): its "
            "learning-rate schedule follows the clock, so it cannot be resumed exactly"
        )
    return config


def run_train(args: argparse.Namespace) -> int:
    from difflab.experiment.autoencoder import train_autoencoder

    if args.resume:
        config = resume_config(Path(args.resume), args)
        done = Path(args.resume) / "autoencoder" / "model.json"
        if done.is_file():
            log.warning("%s has finished already; nothing to resume, nothing changed", args.resume)
            print(done.read_text())
            return 0
    else:
        config = dataclass_from_args(AutoencoderConfig, args)
    start = time.perf_counter()
    card = train_autoencoder(
        config, out=args.out, runs_dir=args.runs_dir, name=args.name, trackers=args.trackers,
        resume=args.resume, progress=not args.no_progress,
    )  # fmt: skip
    card = {k: v for k, v in card.items() if k != "train_config"}
    card["command_seconds"] = round(time.perf_counter() - start, 1)
    json.dump(card, sys.stdout, indent=2)
    print()
    return 1 if card.get("stop_reason") == "nonfinite" else 0
