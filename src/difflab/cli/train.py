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
        help="continue an interrupted run exactly (its config.json is used; a finished run is "
        "left as it is; notifications are those given on this command line, see --resume-notify)",
    )
    parser.add_argument(
        "--resume-notify",
        action="store_true",
        help="with --resume: also use the run folder's notify.command/notify.webhook (a run "
        "folder is data: without this flag they are shown and ignored)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument(
        "--lr-find",
        action="store_true",
        help="run the learning-rate range test instead of training and print "
        "the suggested --train.lr (no run folder is made)",
    )
    parser.add_argument("--no-progress", action="store_true", help="plain log lines, no bars")
    parser.add_argument(
        "--latent",
        metavar="AE_MODEL",
        help="latent diffusion: short for --data.latent AE_MODEL (a folder from `difflab "
        "autoencoder train`); sample and eval then decode through it",
    )
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
    """The run's own config, checked against config.sha256 (notify: see `resume_notify`)."""
    from difflab.config import config_from_dict
    from difflab.tracking.run_folder import read_run_config

    given = given_overrides(args)
    fixed = sorted(k for k in given if not k.startswith("notify."))
    if fixed or args.config or args.preset:
        raise ValueError(
            f"--resume continues {run_dir} with its own config.json; drop "
            f"{', '.join(fixed) or '--config/--preset'} (a changed run "
            "would not be the same run; only --notify.* may be given)"
        )
    check_run_config(run_dir)
    config = config_from_dict(read_run_config(run_dir))
    if config.train.minutes:
        raise ValueError(
            f"{run_dir} was trained for a wall-clock budget (--train.minutes "
            f"{config.train.minutes:g}): its learning-rate schedule follows the clock, so it "
            "cannot be resumed exactly; its last checkpoint and model are in the run folder"
        )
    return config


def check_run_config(run_dir: Path) -> None:
    """Refuse a config.json that differs from the one the run started with (config.sha256)."""
    from difflab.files import sha256_file
    from difflab.tracking.run_folder import CONFIG_FILE, CONFIG_HASH_FILE

    config_path, hash_path = run_dir / CONFIG_FILE, run_dir / CONFIG_HASH_FILE
    for path in (config_path, hash_path):
        if path.is_symlink() and path.resolve().parent != run_dir.resolve():
            raise ValueError(
                f"{path}: a link out of the run folder; not followed: "
                "copy the file itself into the run folder"
            )
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a difflab run folder (no {CONFIG_FILE})")
    if not hash_path.is_file():
        log.warning(
            "%s: no %s (an older run folder); config.json used unchecked", run_dir, CONFIG_HASH_FILE
        )
        return
    recorded = (hash_path.read_text().split() or [""])[0]
    if sha256_file(config_path) != recorded:
        raise ValueError(
            f"{config_path} was edited after the run began (its sha256 differs from "
            f"{CONFIG_HASH_FILE}); --resume continues a run with the config it began with: "
            "restore the file, or start a new run with --config"
        )


def resume_notify(config, run_dir: Path, args: argparse.Namespace):
    """`config` whose notify settings are the folder's only with --resume-notify (else the
    defaults), then the --notify.* flags of this command line: a run folder received from
    someone else must not run a command or post to a URL that the person resuming did not give.
    """
    import dataclasses

    from difflab.config import NotifyConfig, apply_overrides

    keep = args.resume_notify
    given = {k: v for k, v in given_overrides(args).items() if k.startswith("notify.")}
    folder = config.notify
    if (folder.command or folder.webhook) and not keep:
        log.warning(
            "%s asks to notify (command %r, webhook %r): ignored, a run folder is data; "
            "use --resume-notify to allow it, or give --notify.command/--notify.webhook",
            run_dir / "config.json", folder.command, folder.webhook,
        )  # fmt: skip
    base = folder if keep else NotifyConfig()
    return apply_overrides(dataclasses.replace(config, notify=base), given)


def run_finished(run_dir: Path) -> bool:
    """The run ended normally: its model is written (and run.json, when kept, says so)."""
    from difflab.io.model_file import MODEL_WEIGHTS
    from difflab.tracking.store import STATUS_FILE

    try:
        status = json.loads((run_dir / STATUS_FILE).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    return (run_dir / MODEL_WEIGHTS).is_file() or status == "finished"


def run(args: argparse.Namespace) -> int:
    from difflab.experiment import train_experiment

    if args.lr_find:
        from difflab.experiment import find_learning_rate

        found = find_learning_rate(resolve_config(args))
        json.dump(found if args.json else {"suggestion": found["suggestion"]}, sys.stdout)
        print()
        return 0
    if args.latent is not None:  # the same flag as --data.latent
        setattr(args, "cfg:data.latent", args.latent)
    if args.resume_notify and not args.resume:
        raise ValueError("--resume-notify only applies with --resume RUN_DIR")
    run_dir = None  # a new run's folder is made once its data loaded (no orphan on bad --data.*)
    if args.resume:
        run_dir = Path(args.resume)
        config = resume_config(run_dir, args)
        if run_finished(run_dir):
            log.warning("%s has finished already; nothing to resume, nothing changed", run_dir)
            return 0
        config = resume_notify(config, run_dir, args)
        log.info("resuming %s", run_dir)
    else:
        config = resolve_config(args)
    summary = train_experiment(
        config, run_dir, resume=run_dir if args.resume else None, progress=not args.no_progress
    )
    return report_summary(summary, Path(summary["run_dir"]), as_json=args.json)
