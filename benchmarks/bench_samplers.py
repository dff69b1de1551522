"""Sampler overhead per step: difflab's pure functions vs diffusers' scheduler step() loops.

    python benchmarks/bench_samplers.py [--steps 50] [--repeats 7] [--threads 1]

The noise predictor is trivial (returns x_t), so the time is the samplers' own arithmetic and
bookkeeping. Both sides do the same work: diffusers' set_timesteps + scale_model_input + step
for every timestep (construction not timed), difflab's one call with the same timesteps and the same alpha_bar table.
Prints a table to stderr and JSON to stdout: median microseconds per step of each side and\nthe median of the per-repeat speedups (diffusers time / difflab time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from difflab.samplers import SAMPLERS


def identity(x_t, t):
    return x_t


def diffusers_setup(name: str, steps: int):
    """(scheduler factory, step kwargs) for the diffusers counterpart of sampler `name`."""
    import diffusers

    common = {"num_train_timesteps": 1000}
    factories = {
        "ddpm": lambda: diffusers.DDPMScheduler(
            **common, clip_sample=False, timestep_spacing="trailing"
        ),
        "ddim": lambda: diffusers.DDIMScheduler(
            **common, clip_sample=False, timestep_spacing="trailing"
        ),
        "euler": lambda: diffusers.EulerDiscreteScheduler(**common, timestep_spacing="trailing"),
        "dpmpp_2m": lambda: diffusers.DPMSolverMultistepScheduler(
            **common, timestep_spacing="trailing"
        ),
    }
    return factories[name]


def time_diffusers(factory, x_T: torch.Tensor, steps: int) -> float:
    scheduler = factory()  # constructing the config object is not timed; set_timesteps is
    start = time.perf_counter()
    scheduler.set_timesteps(steps)
    x, gen = x_T, torch.Generator().manual_seed(0)
    for t in scheduler.timesteps:
        eps = identity(scheduler.scale_model_input(x, t), t)
        kw = {"generator": gen} if "generator" in scheduler.step.__code__.co_varnames else {}
        x = scheduler.step(eps, t, x, **kw).prev_sample
    return time.perf_counter() - start


def time_difflab(name: str, factory, x_T: torch.Tensor, steps: int) -> float:
    scheduler = factory()  # only to read the same table and timesteps; not timed
    scheduler.set_timesteps(steps)
    alpha_bar, ts = scheduler.alphas_cumprod.double(), scheduler.timesteps.long()
    start = time.perf_counter()
    SAMPLERS[name](identity, x_T, alpha_bar, ts, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def bench(name: str, shape: tuple[int, ...], steps: int, repeats: int) -> dict:
    """Interleave the two sides so that load from other processes hits both alike."""
    factory = diffusers_setup(name, steps)
    x_T = torch.randn(shape)
    time_diffusers(factory, x_T, steps), time_difflab(name, factory, x_T, steps)  # warm-up
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(time_difflab(name, factory, x_T, steps))
        theirs.append(time_diffusers(factory, x_T, steps))
    return {
        "sampler": name,
        "shape": list(shape),
        "steps": steps,
        "difflab_us_per_step": statistics.median(ours) / steps * 1e6,
        "diffusers_us_per_step": statistics.median(theirs) / steps * 1e6,
        "speedup": statistics.median(b / a for a, b in zip(ours, theirs)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        bench(name, shape, args.steps, args.repeats)
        for shape in [(1, 1, 8, 8), (64, 1, 32, 32)]
        for name in ("ddpm", "ddim", "euler", "dpmpp_2m")
    ]
    print(
        f"{'sampler':10s} {'shape':16s} {'difflab us/step':>16s} {'diffusers us/step':>18s} {'speedup':>8s}",
        file=sys.stderr,
    )
    for r in rows:
        print(
            f"{r['sampler']:10s} {str(tuple(r['shape'])):16s} {r['difflab_us_per_step']:16.1f} "
            f"{r['diffusers_us_per_step']:18.1f} {r['speedup']:8.2f}",
            file=sys.stderr,
        )
    print(json.dumps({"threads": args.threads, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
