"""End to end at equal training wall-clock: difflab's recipe vs diffusers' training example
and vs lucidrains' denoising-diffusion-pytorch.

    python benchmarks/bench_e2e.py                         # 30 min of training per side, n=2048
    python benchmarks/bench_e2e.py --minutes 0.5 --n 256   # a plumbing check

(a) difflab: the `fmnist-cpu` preset, wired as `difflab train` wires it (Learner + standard
    callbacks: bf16, one-cycle LR, grad clip, EMA), stopped by a wall-clock guard; no
    validation passes (they would eat the budget).
(b) the peer: diffusers' examples/unconditional_image_generation/train_unconditional.py recipe
    with UNet2DModel scaled to 28x28 (see difflab/bench/peer.py for every setting and change).
(c) the second peer (`--peers lucidrains`): lucidrains' denoising-diffusion-pytorch, its Unet
    and GaussianDiffusion with their default objective (pred_v) and schedule (sigmoid), trained
    by its Trainer's loop and defaults, sampled by its own DDIM at 25 steps (see
    difflab/bench/peer_lucidrains.py, also for how it imports without torchvision). When the
    package is not installed its entry in the JSON says so and the other arms still run.
All arms draw --n images with DDIM, 25 steps, eta 0 (difflab: no x0 clipping, its preset's
default; diffusers: DDIMScheduler from the training scheduler's config, clip_sample=True, as
the example's pipeline would; lucidrains: its own DDIM, x0 clipped), and all are scored by the
same FMNIST-FID (the classifier that ships with difflab, against the Fashion-MNIST test set),
with the real-data floor at the same n. difflab's and diffusers' LR schedules are indexed by the
share of the budget spent, not by the step, so that each run ends its schedule exactly at the
budget (see difflab/bench/budget.py); lucidrains' Trainer keeps its LR constant. The trainings
run one after the other on a shared machine: each arm's measured img/s is reported beside its
FID. Progress and a summary go to stderr; the last line of stdout is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-clock per side")
    p.add_argument("--quick", action="store_true", help="same as --minutes 2 --n 1024")
    p.add_argument("--n", type=int, default=2048, help="images sampled per side for the FID")
    p.add_argument("--preset", default="fmnist-cpu", help="difflab config preset")
    p.add_argument("--peer-width", type=int, default=40, help="diffusers block width w (w,2w,4w)")
    p.add_argument("--peer-batch-size", type=int, default=16, help="the example's default: 16")
    p.add_argument("--limit", type=int, help="train both sides on the first N images only")
    p.add_argument("--only", choices=["difflab", "peer"], help="run one side (no ratio)")
    p.add_argument(
        "--peers",
        default="diffusers,lucidrains",
        help="comma list of the peers to train: diffusers (key 'peer' in the JSON), "
        "lucidrains (key 'lucidrains')",
    )
    p.add_argument("--lucidrains-dim", type=int, default=48, help="its Unet dim (mults 1,2,4)")
    p.add_argument("--out", type=Path, help="folder for sample grids, models and results.json")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads for both sides (0: torch's default; "
        "1 is faster on a machine shared with other jobs)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.n = 2.0, 1024
    if args.minutes <= 0 or args.n < 2:
        p.error("--minutes must be > 0 and --n >= 2")
    args.peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        p.error(f"--peers: unknown {sorted(unknown)}; choose from {', '.join(PEERS)}")
    return args


def run_difflab(args, evaluator, out: Path) -> dict:
    from difflab.bench.budget import train_for
    from difflab.config import load_config
    from difflab.data import to_uint8
    from difflab.generation import generate_images
    from difflab.precision import resolve_precision

    overrides = {"sample.sampler": "ddim", "sample.steps": 25, "sample.eta": 0.0}
    if args.limit:
        overrides["data.limit"] = args.limit
    config = load_config(preset=args.preset, overrides=overrides)
    trained = train_for(config, args.minutes * 60, out / "difflab", progress=not args.no_progress)
    config = trained["config"]
    start = time.perf_counter()
    images = generate_images(
        trained["trained"],
        config.sample,
        seeds=range(args.n),
        bf16=resolve_precision(config.train.mixed_precision) == "bf16",
        progress=not args.no_progress,
    )  # fmt: skip (padding is cropped by generate_images)
    sample_seconds = time.perf_counter() - start
    uint8 = to_uint8(images, config.data.low, config.data.high)
    return summarise(trained, uint8, sample_seconds, evaluator, out / "difflab") | {
        "model": f"difflab {config.model.preset}",
        "params": sum(p.numel() for p in trained["model"].parameters()),
        "batch_size": config.train.batch_size,
        "sampler": "ddim 25 steps, eta 0, no x0 clipping",
    }


def run_peer(args, evaluator, out: Path) -> dict:
    from difflab.bench.peer import PeerRecipe, sample_peer, train_peer

    recipe = PeerRecipe(width=args.peer_width, batch_size=args.peer_batch_size)
    trained = train_peer(recipe, args.minutes * 60, limit=args.limit, progress=not args.no_progress)
    start = time.perf_counter()
    uint8 = sample_peer(
        trained["model"], trained["scheduler_config"], n=args.n, progress=not args.no_progress
    )
    sample_seconds = time.perf_counter() - start
    return summarise(trained, uint8, sample_seconds, evaluator, out / "peer") | {
        "model": f"diffusers UNet2DModel w={recipe.width}",
        "params": trained["params"],
        "batch_size": recipe.batch_size,
        "sampler": "DDIMScheduler 25 steps, eta 0, clip_sample=True (from DDPMScheduler config)",
    }


def run_lucidrains(args, evaluator, out: Path) -> dict:
    from difflab.bench.peer_lucidrains import (
        LucidrainsRecipe,
        LucidrainsUnavailable,
        sample_lucidrains,
        train_lucidrains,
    )

    recipe = LucidrainsRecipe(dim=args.lucidrains_dim)
    model = f"lucidrains Unet dim={recipe.dim} mults={recipe.dim_mults}"
    try:
        trained = train_lucidrains(
            recipe, args.minutes * 60, limit=args.limit, progress=not args.no_progress
        )
    except LucidrainsUnavailable as err:
        print(f"lucidrains: skipped, {err}", file=sys.stderr)
        return {"model": model, "skipped": f"not installed: {err}"}
    start = time.perf_counter()
    uint8 = sample_lucidrains(trained["model"], n=args.n)
    sample_seconds = time.perf_counter() - start
    return summarise(trained, uint8, sample_seconds, evaluator, out / "lucidrains") | {
        "model": model,
        "params": trained["params"],
        "batch_size": recipe.batch_size,
        "objective": trained["objective"],
        "torchvision_stand_in": trained["torchvision_stand_in"],
        "sampler": f"its DDIM {recipe.sampling_timesteps} steps, eta 0, x0 clipped",
    }


PEERS = {"diffusers": ("peer", run_peer), "lucidrains": ("lucidrains", run_lucidrains)}


def summarise(trained: dict, uint8, sample_seconds: float, evaluator, folder: Path) -> dict:
    """Timings of the run and the FID report of its samples; a sample grid in `folder`."""
    from difflab.io.images import save_grid

    folder.mkdir(parents=True, exist_ok=True)
    save_grid(uint8[:64], folder / "samples.png", scale=2)
    report = evaluator.evaluate(uint8, progress=False)
    keep = ("fid", "fid_floor", "kid_mean", "kid_std", "n")
    return {k: report[k] for k in keep if k in report} | {
        k: trained[k]
        for k in ("steps", "epochs_started", "train_seconds", "stopped_by_budget",
                  "train_images_per_s")
    } | {
        "sample_seconds": sample_seconds,
        "sample_images_per_s": len(uint8) / sample_seconds,
    }  # fmt: skip


def print_summary(result: dict) -> None:
    for side in ("difflab", "peer", "lucidrains"):
        r = result.get(side)
        if r and "skipped" in r:
            print(f"{side:10s} {r['model']:40s} skipped: {r['skipped']}", file=sys.stderr)
        elif r:
            print(
                f"{side:10s} {r['model']:40s} FID {r['fid']:8.2f} (floor {r.get('fid_floor') or 0:.2f})"
                f"  {r['steps']} steps in {r['train_seconds']:.0f} s, {r['train_images_per_s']:.0f} img/s"
                f"  sampling {r['sample_images_per_s']:.1f} img/s",
                file=sys.stderr,
            )
    for side, name in (("peer", "diffusers"), ("lucidrains", "lucidrains")):
        if f"fid_ratio_{side}_over_difflab" in result:
            print(
                f"{name} FID / difflab FID = {result[f'fid_ratio_{side}_over_difflab']:.2f}"
                " (target >= 2)",
                file=sys.stderr,
            )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from difflab.metrics.shipped import load_shipped_evaluator

    evaluator = load_shipped_evaluator()  # first: fail before an hour of training, not after
    out = args.out or Path(tempfile.mkdtemp(prefix="difflab-e2e-"))
    result = {"minutes": args.minutes, "n": args.n, "torch_threads": torch.get_num_threads()}
    result["load_average_before"] = list(os.getloadavg())
    if args.only != "peer":
        result["difflab"] = run_difflab(args, evaluator, out)
    if args.only != "difflab":
        for name in args.peers:
            key, run = PEERS[name]
            result[key] = run(args, evaluator, out)
    result["load_average_after"] = list(os.getloadavg())
    for key, _ in PEERS.values():
        if "difflab" in result and "fid" in result.get(key, {}):
            result[f"fid_ratio_{key}_over_difflab"] = result[key]["fid"] / result["difflab"]["fid"]
    result["out"] = str(out)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print_summary(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
