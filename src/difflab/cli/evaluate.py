"""`difflab eval`: FMNIST-FID (with its real-data floor) and KID of a model, samples or images."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from difflab.cli.sampling_flags import add_sampling_arguments, plan_for, sample_config

log = logging.getLogger("difflab")

DESCRIPTION = """\
Measure sample quality with FID and KID computed from the pooled features of the Fashion-MNIST
classifier that ships with difflab (or pytorch-fid's Inception with --inception-weights).
TARGET is a run folder or model.safetensors (N images are sampled first), a samples .npz, or a
folder of images. Every FID comes with its real-data floor: the FID of N real training images
against the same reference, the best a model can hope for at that N.
--sweep samples with several samplers and step counts and writes a table and plots of FID
against model evaluations and against wall-clock time."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="FID/KID of a model, samples or images",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="RUN_DIR|MODEL.safetensors|SAMPLES.npz|IMAGE_FOLDER")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--no-kid", action="store_true", help="skip KID")
    parser.add_argument(
        "--inception-weights",
        metavar="PTH",
        help="pytorch-fid Inception "
        "weights file (pt_inception-2015-12-05-6726825d.pth); sha256 checked",
    )
    parser.add_argument(
        "--x0-fid-every",
        type=int,
        metavar="K",
        default=0,
        help="also measure FID of the predicted x0 at every K-th sampling step",
    )
    parser.add_argument("--sweep", action="store_true", help="sweep samplers x steps")
    parser.add_argument(
        "--samplers",
        default="ddim,dpmpp_2m,heun,euler",
        help="samplers for --sweep (comma-separated)",
    )
    parser.add_argument("--steps-list", default="5,10,25,50", help="step counts for --sweep")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where sweep/x0 outputs go (default: RUN_DIR/eval or beside the model)",
    )
    parser.add_argument("--data-root", metavar="DIR", help="folder with the Fashion-MNIST files")
    add_sampling_arguments(parser, n=2048)
    parser.set_defaults(handler=run)


def load_evaluator(args: argparse.Namespace):
    if args.inception_weights:
        from difflab.metrics.inception import load_inception_evaluator

        return load_inception_evaluator(args.inception_weights, data_root=args.data_root)
    from difflab.metrics.shipped import load_shipped_evaluator

    return load_shipped_evaluator(data_root=args.data_root)


def is_model_target(target: Path) -> bool:
    return target.suffix == ".safetensors" or (target / "model.safetensors").is_file()


def load_images_target(target: Path):
    """uint8 (N, C, H, W) from a samples .npz or an image folder."""
    if target.suffix == ".npz":
        from difflab.io.images import load_samples_npz

        return load_samples_npz(target)
    if target.is_dir():
        from difflab.data import load_images

        return load_images(str(target)).images
    raise FileNotFoundError(
        f"{target}: expected a run folder, a .safetensors model, "
        "a samples .npz or a folder of images"
    )


def training_padding(trained) -> int:
    """Pixels of padding the model was trained with on each side (0 for diffusers models)."""
    return int(trained.meta.get("run_config", {}).get("data", {}).get("pad", 0))


def sample_and_measure(trained, sample, evaluator, *, kid: bool, on_step=None) -> dict[str, Any]:
    from difflab.data import crop_padding, to_uint8
    from difflab.generation import generate_images, model_evaluations

    plan = plan_for(sample, low=trained.low, high=trained.high)
    start = time.perf_counter()
    images = generate_images(
        trained.model,
        trained.schedule,
        objective=trained.objective,
        image_shape=trained.image_shape,
        seeds=list(range(sample.seed, sample.seed + sample.n)),
        plan=plan,
        on_step=on_step,
    )
    seconds = time.perf_counter() - start
    # The feature classifier sees images at their original size.
    images = crop_padding(images, training_padding(trained))
    result = measure(evaluator, to_uint8(images, trained.low, trained.high), kid=kid)
    result.update(
        sampler=sample.sampler,
        steps=sample.steps,
        eta=sample.eta if sample.sampler == "ddim" else None,
        nfe=model_evaluations(plan, trained.schedule.n_steps),
        sampling_seconds=round(seconds, 2),
    )
    return result


def measure(evaluator, pixels, *, kid: bool) -> dict[str, Any]:
    report = evaluator.evaluate(pixels, kid=kid)
    if "kid_mean" in report:
        report["kid"], report["kid_std"] = report.pop("kid_mean"), report["kid_std"]
    for warning in report.get("warnings", []):
        log.warning("%s", warning)
    return report


def output_dir(args: argparse.Namespace, target: Path) -> Path:
    if args.out:
        return Path(args.out)
    return (target if target.is_dir() else target.parent) / "eval"


def run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if not target.exists():
        raise FileNotFoundError(f"{target}: no such file or folder")
    sample = sample_config(args)
    start = time.perf_counter()
    evaluator = load_evaluator(args)
    if args.sweep:
        from difflab.cli.sweep import run_sweep

        result: Any = run_sweep(args, target, sample, evaluator, output_dir(args, target))
    elif is_model_target(target):
        result = evaluate_model(args, target, sample, evaluator)
    else:
        result = measure(evaluator, load_images_target(target), kid=not args.no_kid)
    if isinstance(result, dict):
        result["seconds"] = round(time.perf_counter() - start, 2)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    elif isinstance(result, dict):
        floor = result.get("fid_floor")
        log.info(
            "FID %.3f (real-data floor %s at n=%d)",
            result["fid"],
            f"{floor:.3f}" if floor is not None else "n/a",
            result["n"],
        )
    return 0


def evaluate_model(args, target: Path, sample, evaluator) -> dict[str, Any]:
    from difflab.cli.experiment import load_trained

    trained = load_trained(target)
    tracker = None
    if args.x0_fid_every:
        from difflab.metrics.steps import X0FidTracker, every_nth_step
        from difflab.samplers import timesteps_for

        n_steps = len(
            timesteps_for(
                sample.sampler,
                trained.schedule.n_steps,
                sample.steps,
                alpha_bar=trained.schedule.alpha_bar,
            )
        )
        tracker = X0FidTracker(evaluator, every_nth_step(n_steps, args.x0_fid_every))
    on_step = tracker and _cropping_on_step(tracker, training_padding(trained))
    result = sample_and_measure(trained, sample, evaluator, kid=not args.no_kid, on_step=on_step)
    if tracker is not None:
        out = output_dir(args, target)
        out.mkdir(parents=True, exist_ok=True)
        rows = tracker.results()
        (out / "x0_fid.json").write_text(json.dumps(rows, indent=2))
        result["x0_fid"] = {
            "json": str(out / "x0_fid.json"),
            "plot": str(tracker.plot(out / "x0_fid.png", rows=rows)),
        }
    return result


def _cropping_on_step(on_step, pad: int):
    """Hands `on_step` each step's x0_hat with the training padding cropped off."""
    if not pad:
        return on_step
    from dataclasses import replace

    from difflab.data import crop_padding

    return lambda info: on_step(replace(info, x0_hat=crop_padding(info.x0_hat, pad)))
