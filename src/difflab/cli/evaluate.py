"""`difflab eval`: FMNIST-FID (with its real-data floor) and KID of a model, samples or images."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from difflab.cli.sampling_flags import (
    add_sampling_arguments,
    recorded_sampling,
    sample_config,
)

log = logging.getLogger("difflab")

DESCRIPTION = """\
Measure sample quality with FID and KID in the feature space of a classifier trained on the
images' own dataset (`difflab classifier ls`; Fashion-MNIST's ships with difflab), or with
pytorch-fid's Inception (--inception-weights). TARGET is a run folder or model.safetensors (N
images are sampled first; its dataset picks the feature model), a samples .npz or a folder of
images (pass --dataset). Every FID comes with its real-data floor: the FID of N real training
images against the same reference, the best a model can hope for at that N.
A class-conditional model is sampled in the training set's class proportions at --guidance and
also gets class_accuracy (the classifier's verdict against the requested class) and per-class
FID with per-class floors; --guidance-sweep 0,1,2,3,5 gives the trade-off curve.
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
        "--guidance-sweep",
        metavar="W,W,...",
        help="conditional models: FID, class accuracy and sampling time at each guidance scale "
        "(e.g. 0,1,2,3,5): a table and a plot in --out",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where sweep/x0 outputs go (default: RUN_DIR/eval or beside the model)",
    )
    parser.add_argument(
        "--dataset",
        metavar="NAME|FOLDER",
        help="the data the images imitate, for a .npz or image folder (a model knows its own): "
        "its feature model and test statistics are the reference",
    )
    parser.add_argument(
        "--feature-model",
        metavar="ID",
        help="a feature model id from `difflab classifier ls` (default: the dataset's; the "
        "built-in one for fashion_mnist)",
    )
    parser.add_argument("--data-root", metavar="DIR", help="folder with the dataset's files")
    parser.add_argument(
        "--device",
        default="auto",
        help="where the model samples: auto (a CUDA GPU if there is one), cpu, cuda, cuda:1",
    )
    add_sampling_arguments(parser, n=2048)
    parser.set_defaults(handler=run)


def load_evaluator(args: argparse.Namespace, dataset: str | None, image_shape, data_root):
    """Inception when its weights are given, else the feature model of the images' dataset."""
    if args.inception_weights:
        from difflab.metrics.inception import load_inception_evaluator

        return load_inception_evaluator(args.inception_weights, data_root=data_root)
    if dataset is None:
        raise ValueError(
            "which data do these images imitate? pass --dataset NAME|FOLDER (its feature model "
            "and reference are used: `difflab classifier ls`), or --inception-weights PTH"
        )
    from difflab.evaluation import dataset_evaluator

    return dataset_evaluator(
        dataset, image_shape, data_root=data_root, feature_model=args.feature_model
    )


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


def output_dir(args: argparse.Namespace, target: Path) -> Path:
    if args.out:
        return Path(args.out)
    return (target if target.is_dir() else target.parent) / "eval"


def _csv(text: str, kind: type, flag: str) -> list:
    try:
        values = [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise ValueError(f"{flag}: cannot read {text!r} ({err})") from err
    if not values:
        raise ValueError(f"{flag}: give at least one value, e.g. {flag} 10,25")
    return values


def run(args: argparse.Namespace) -> int:
    from difflab import evaluation

    target = Path(args.target)
    if not target.exists():
        raise FileNotFoundError(f"{target}: no such file or folder")
    if args.sweep:
        samplers = _csv(args.samplers, str, "--samplers")
        steps_list = _csv(args.steps_list, int, "--steps-list")
        if not is_model_target(target):
            raise ValueError(f"--sweep needs a model (run folder or .safetensors), got {target}")
    start = time.perf_counter()
    result: Any
    if is_model_target(target):
        from difflab.generation import pick_device
        from difflab.io.trained import load_trained

        trained = load_trained(target, device=pick_device(args.device), guide=args.guide)
        sample = sample_config(args, recorded_sampling(trained.meta.get("run_config")))
        dataset, root, shape = evaluation.trained_dataset(trained)
        evaluator = load_evaluator(args, args.dataset or dataset, shape, args.data_root or root)
        kid = not args.no_kid
        if args.guidance_sweep is not None:
            result = evaluation.guidance_sweep(
                trained, sample, evaluator, out=output_dir(args, target), data_root=args.data_root,
                scales=_csv(args.guidance_sweep, float, "--guidance-sweep"),
            )  # fmt: skip
        elif args.sweep:
            result = evaluation.sweep_samplers(
                trained, sample, evaluator, samplers=samplers, steps_list=steps_list,
                out=output_dir(args, target),
            )  # fmt: skip
        elif args.x0_fid_every:
            result = evaluation.x0_fid_across_steps(
                trained,
                sample,
                evaluator,
                every=args.x0_fid_every,
                out=output_dir(args, target),
                kid=kid,
            )
        else:
            result = evaluation.evaluate_model(
                trained, sample, evaluator, kid=kid, data_root=args.data_root
            )
    else:
        pixels = load_images_target(target)
        evaluator = load_evaluator(args, args.dataset, tuple(pixels.shape[1:]), args.data_root)
        result = evaluation.measure(evaluator, pixels, kid=not args.no_kid)
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
