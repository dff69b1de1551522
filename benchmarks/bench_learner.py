"""Step-time overhead of the Learner (+ the standard callbacks) against a bare PyTorch loop.

Same small conv model, same data (InMemoryBatches), same AdamW. Variants run interleaved,
`--repeats` times each; the median time per step is reported, with its ratio to the bare loop.

    python benchmarks/bench_learner.py [--steps 30] [--repeats 5] [--batch-size 64]

Prints one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from difflab.data import InMemoryBatches
from difflab.training import Learner, standard_callbacks


def conv_net(channels: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(channels, 1, 3, padding=1),
    )


def objective(model: nn.Module, batch) -> torch.Tensor:
    x, _ = batch
    noise = torch.randn_like(x)
    return nn.functional.mse_loss(model(x + noise), noise)


def make_data(steps: int, batch_size: int) -> InMemoryBatches:
    images = np.random.default_rng(0).integers(0, 256, (steps * batch_size, 1, 28, 28), np.uint8)
    return InMemoryBatches(images, batch_size=batch_size, seed=0)


def bare_loop(data: InMemoryBatches, *, bf16: bool) -> float:
    model = conv_net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data.set_epoch(0)
    start = time.perf_counter()
    for batch in data:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = objective(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / len(data)


def learner_loop(data: InMemoryBatches, *, callbacks: str, bf16: bool = False) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        cbs = []
        if callbacks == "standard":
            cbs = standard_callbacks(
                mixed_precision="bf16" if bf16 else "no",
                progress=False,
                checkpoint_every=0,
                run_dir=run_dir,
            )
        learn = Learner(conv_net(), data, objective, lr=1e-3, callbacks=cbs, run_dir=run_dir)
        data.set_epoch(1)  # not 0: fit() calls set_epoch(0), which must reset the position
        start = time.perf_counter()
        learn.fit(1)
        return (time.perf_counter() - start) / len(data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bf16", action="store_true", help="also time bf16 autocast variants")
    args = p.parse_args()
    data = make_data(args.steps, args.batch_size)
    variants: dict[str, Callable[[], float]] = {
        "bare_fp32": lambda: bare_loop(data, bf16=False),
        "learner_no_callbacks": lambda: learner_loop(data, callbacks="none"),
        "learner_standard_fp32": lambda: learner_loop(data, callbacks="standard"),
    }
    if args.bf16:
        variants["bare_bf16"] = lambda: bare_loop(data, bf16=True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()  # warm-up (allocator, first-call costs)
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(fn())
    median = {k: statistics.median(v) for k, v in times.items()}
    base = median["bare_fp32"]
    print(
        json.dumps(
            {
                "ms_per_step": {k: round(v * 1e3, 3) for k, v in median.items()},
                "ratio_to_bare_fp32": {k: round(v / base, 3) for k, v in median.items()},
                "steps": args.steps,
                "repeats": args.repeats,
                "batch_size": args.batch_size,
                "torch_threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
