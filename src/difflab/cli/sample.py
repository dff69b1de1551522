"""`difflab sample`: images from a trained model, as a PNG grid and an .npz of uint8 pixels."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

from difflab.cli.sampling_flags import (
    add_sampling_arguments,
    recorded_sampling,
    sample_config,
)

log = logging.getLogger("difflab")

DESCRIPTION = """\
Draw images from a trained model (a run folder or a model.safetensors with its model.json).
Image k comes from seed SEED+k, so the same image appears whatever --batch-size is.
Writes OUT.png (a grid) and OUT.npz (uint8 pixels, N x C x H x W)."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="sample images from a trained model",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="RUN_DIR|MODEL.safetensors")
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="output path without extension "
        "(default: RUN_DIR/samples/<sampler>-<its options>-seed<seed>, e.g. "
        "ddim-25steps-eta1-seed0 or ddpm_skip-every_third-seed0)",
    )
    parser.add_argument(
        "--trajectory",
        action="store_true",
        help="also save x0_hat over the steps for the first 8 images",
    )
    parser.add_argument(
        "--no-bf16",
        action="store_true",
        help="run the network in float32 (default: bf16 autocast only where the device computes "
        "bf16 natively, as training's --train.mixed-precision auto)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (a CUDA GPU if there is one), cpu, cuda, cuda:1"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument(
        "--class",
        dest="class_",
        metavar="K|NAME",
        help="conditional models: draw this class only (an index or a name, e.g. 7 or sneaker); "
        "without it the grid has one row per class",
    )
    add_sampling_arguments(parser)
    parser.set_defaults(handler=run)


def default_out(model_path: Path, sample, class_: str | None = None) -> Path:
    """RUN/samples/<sampler>-<what sets its budget>-seed<seed> (or beside a model file)."""
    from difflab.samplers import sampler_spec

    folder = model_path / "samples" if model_path.is_dir() else model_path.parent
    # every option the sampler reads is in the name, so eta 0 and eta 1 do not overwrite each other
    label = {"steps": "{}steps", "eta": "eta{:g}", "skip": "{}", "churn": "churn{:g}"}
    label |= {"s_tmin": "tmin{:g}", "s_tmax": "tmax{:g}", "s_noise": "snoise{:g}"}
    settings = sampler_spec(sample.sampler).settings(sample)
    parts = [label[name].format(value) for name, value in settings.items()]
    if class_ is not None:
        parts.append(f"class{class_}-w{sample.guidance:g}")
    if sample.autoguidance != 1.0:  # guided and unguided samples of one run keep both files
        interval = sample.guided_timesteps()
        parts.append(
            f"ag{sample.autoguidance:g}" + ("-t{:g}-{:g}".format(*interval) if interval else "")
        )
    return folder / "-".join([sample.sampler, *parts, f"seed{sample.seed}"])


def run(args: argparse.Namespace) -> int:
    import torch

    from difflab.data import to_uint8
    from difflab.generation import (
        class_label,
        class_rows,
        generate_images,
        network_evaluations,
        pick_device,
    )
    from difflab.io.images import save_grid, save_samples_npz, save_trajectory
    from difflab.io.trained import load_trained
    from difflab.samplers import sampler_spec

    trained = load_trained(
        existing_model_path(args.model), device=pick_device(args.device), guide=args.guide
    )
    sample = sample_config(args, recorded_sampling(trained.meta.get("run_config")))
    trajectory: list = []

    def record(info) -> None:
        trajectory.append(info.x0_hat[:8].float().cpu())

    labels, ncols = class_rows(trained, sample.n)
    if args.class_ is not None:
        labels, ncols = torch.full((sample.n,), class_label(trained, args.class_)), None
    if labels is not None:
        sample = dataclasses.replace(sample, n=len(labels))
    start = time.perf_counter()
    images = generate_images(
        trained, sample, labels=labels, bf16=False if args.no_bf16 else None,
        on_step=record if args.trajectory else None,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    out = Path(args.out) if args.out else default_out(Path(args.model), sample, args.class_)
    pixels = to_uint8(images, trained.low, trained.high)
    grid = save_grid(pixels, out.with_suffix(".png"), scale=2, ncols=ncols)
    npz = save_samples_npz(out.with_suffix(".npz"), pixels)
    summary = {
        "grid": str(grid),
        "npz": str(npz),
        "n": sample.n,
        "sampler": sample.sampler,
        "steps": sample.steps,
        **sampler_spec(sample.sampler).settings(sample),
        "nfe": network_evaluations(trained, sample),
        **(
            {"guidance": sample.guidance, "labels": sorted(set(labels.tolist()))}
            if labels is not None
            else {}
        ),
        "seconds": round(seconds, 2),
        "images_per_s": round(sample.n / seconds, 2),
    }
    if args.trajectory:
        value_range = (trained.low, trained.high)
        path = save_trajectory(
            out.with_name(out.name + "-trajectory.png"), trajectory, value_range=value_range
        )
        summary["trajectory"] = str(path)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        log.info("wrote %s and %s (%.1f images/s)", grid, npz, summary["images_per_s"])
    return 0


def existing_model_path(path: str) -> Path:
    """The model argument, or a one-line error saying that it does not exist."""
    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(
            f"{target}: no such run folder or model file (give a run folder such as "
            "runs/00001-..., or a model.safetensors beside its model.json)"
        )
    return target
