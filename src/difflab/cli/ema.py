"""`difflab ema`: a model file of any EMA width from a run's post-hoc EMA snapshots (EDM2)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from difflab.cli.sampling_flags import (
    add_sampling_arguments,
    recorded_sampling,
    sample_config,
)

log = logging.getLogger("difflab")

DESCRIPTION = """\
Post-hoc EMA (Karras et al. 2024, EDM2): a run trained with --train.posthoc-ema-every K stored
power-function averages of its weights in RUN/ema_snapshots. From them, the average of any
width sigma_rel (EMA length relative to the training length) is reconstructed by least squares.

  difflab ema RUN --sigma-rel 0.08 --out model-ema008     a model file for sample/eval
  difflab ema RUN --sweep 0.03,0.05,0.08,0.12,0.2 --n 512  FID of each; table, plot, best

The sweep writes RUN/eval/ema_sweep.json and ema_sweep.png (or into --out)."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="reconstruct the EMA of any width after training (post-hoc EMA)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--sigma-rel", type=float, metavar="S", help="write the model of width S")
    what.add_argument("--sweep", metavar="S,S,...", help="measure FID for each width")
    parser.add_argument(
        "--step", type=int, metavar="T",
        help="reconstruct the average at step T (default: the newest snapshot's)",
    )  # fmt: skip
    parser.add_argument(
        "--out", metavar="DIR",
        help="model folder (--sigma-rel; default RUN_DIR/ema-S) or sweep outputs (RUN_DIR/eval)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="where --sweep samples: auto, cpu, cuda")
    add_sampling_arguments(parser, n=512)
    parser.set_defaults(handler=run)


def parse_sigma_rels(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise ValueError(f"--sweep: cannot read {text!r} ({err})") from err
    if not values:
        raise ValueError("--sweep: give at least one width, e.g. --sweep 0.05,0.1")
    return values


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    if args.sigma_rel is not None:
        from difflab.io.ema_snapshots import export_posthoc_model

        out = Path(args.out) if args.out else run_dir / f"ema-{args.sigma_rel:.4f}"
        weights, info = export_posthoc_model(run_dir, args.sigma_rel, out, step=args.step)
        log.info("wrote %s (sigma_rel %g at step %d from %d snapshots)", weights,
                 info["sigma_rel"], info["step"], info["snapshots"])  # fmt: skip
        result = {"model": str(weights), **info}
    else:
        from difflab.experiment.posthoc_ema import sweep_posthoc_ema
        from difflab.generation import pick_device
        from difflab.tracking.run_folder import read_run_config

        sample = sample_config(args, recorded_sampling(read_run_config(run_dir)))
        result = sweep_posthoc_ema(
            run_dir, parse_sigma_rels(args.sweep), sample, step=args.step,
            out=args.out, device=pick_device(args.device), guide=args.guide,
        )  # fmt: skip
        print_table(result)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


def print_table(result: dict) -> None:
    """The sweep as a table on stderr (stdout holds the JSON)."""
    lines = [f"{'sigma_rel':>9}  {'FID':>8}", f"{'run EMA':>9}  {result['trained_ema_fid']:8.3f}"]
    for row in result["rows"]:
        mark = "  <- best" if row["sigma_rel"] == result["best_sigma_rel"] else ""
        lines.append(f"{row['sigma_rel']:9.3f}  {row['fid']:8.3f}{mark}")
    print("\n".join(lines), file=sys.stderr)
