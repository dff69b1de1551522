"""`difflab quickstart`: the main job in one command — train, sample, evaluate."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

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
    from difflab.cli.evaluate import sample_and_measure
    from difflab.cli.experiment import load_trained, train_experiment
    from difflab.cli.train import nonfinite_message, start_run_once
    from difflab.data import to_uint8
    from difflab.generation import generate_images
    from difflab.io.images import save_grid
    from difflab.metrics.shipped import load_shipped_evaluator
    from difflab.training import process_rank

    config = resolve_config(args)
    evaluator = load_shipped_evaluator(data_root=config.data.root)  # fail early, not after training
    run_dir = start_run_once(config)  # one folder, also under accelerate launch / torchrun
    log.info("1/3 training -> %s", run_dir)
    summary = train_experiment(config, run_dir, progress=not args.no_progress)
    if process_rank()[0] != 0:
        return 0  # training was shared; sampling and evaluation are the main process's
    if summary["stop_reason"] == "nonfinite":
        log.error("%s", nonfinite_message(summary))
        return 1  # nothing to sample from: say so instead of failing to load model.safetensors
    if not summary["finished"]:
        return 130  # interrupted: the checkpoint is saved, `difflab train --resume` continues
    trained = load_trained(run_dir)
    log.info("2/3 sampling a grid with %s, %d steps", config.sample.sampler, config.sample.steps)
    from difflab.cli.experiment import sampling_plan

    grid_images = generate_images(
        trained.model,
        trained.schedule,
        objective=trained.objective,
        image_shape=trained.image_shape,
        seeds=list(range(64)),
        plan=sampling_plan(config),
    )
    grid = save_grid(
        to_uint8(grid_images, trained.low, trained.high), run_dir / "samples" / "final.png", scale=2
    )
    log.info("3/3 evaluating %d samples", config.eval.n)
    start = time.perf_counter()
    from dataclasses import replace

    result = sample_and_measure(
        trained, replace(config.sample, n=config.eval.n), evaluator, kid=True
    )
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    report = {"run_dir": str(run_dir), "grid": str(grid), "train": summary, "eval": result}
    (run_dir / "eval.json").write_text(json.dumps(report, indent=2))
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0
