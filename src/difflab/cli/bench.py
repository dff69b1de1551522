"""`difflab bench`: run the benchmark suite against the peers and print every ratio."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Run the benchmark suite of the source checkout (benchmarks/*.py), each script measuring
difflab and its peer on the same work in one process, and print one table of ratios:
  unet      training step img/s, FLOPs/img and MFU vs diffusers UNet2DModel (fp32, bf16;
            eager and torch.compile, whose first run on a machine compiles for minutes)
  levers    each speed lever of a training step (bf16, channels_last, AdamW kernels,
            torch.compile, batch, widths, fused attention) vs the step without it
  samplers  sampler arithmetic per step vs diffusers' scheduler loops
  fid       FID from features vs pytorch-fid's method and torchmetrics
  data      batches/s vs a DataLoader with per-item transforms
  learner   Learner + standard callbacks vs a bare PyTorch loop
  e2e       FMNIST-FID at equal training wall-clock vs diffusers' example recipe
Every ratio is difflab's advantage (>1: difflab faster, cheaper or lower FID), computed from
the two figures on its row. Timings on a shared machine are noisy: compare ratios, not times.
Sizes: default full (e2e trains 30 min per side), --quick (a few minutes in all), --smoke
(seconds; checks the plumbing, the figures mean little)."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="benchmark suite: difflab vs diffusers / pytorch-fid / DataLoader",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short settings, a few minutes")
    size.add_argument("--smoke", action="store_true", help="tiny settings, plumbing check")
    parser.add_argument("--only", metavar="NAME,...", help="run only these benchmarks")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout (table: stderr)")
    parser.add_argument("--out", metavar="FILE", help="also write the full results as JSON here")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--benchmarks-dir", metavar="DIR", help="the benchmarks/ folder (default: the checkout's)"
    )
    parser.set_defaults(handler=run)


def _number(x: float) -> str:
    """Three significant figures, without exponents for the magnitudes seen here."""
    if x == 0 or not (1e-3 <= abs(x) < 1e6):
        return f"{x:.3g}"
    return f"{x:.{max(0, 2 - int(f'{abs(x):e}'.split('e')[1]))}f}"


def format_summary(results: list) -> str:
    """A fixed-width table: one row per ratio, then one line per note (a peer that did not run)
    and per failed benchmark."""
    head = ("benchmark", "measure", "difflab", "peer", "unit", "advantage", "peer is", "target")
    rows = [
        (r.benchmark, r.measure, _number(r.difflab), _number(r.peer), r.unit,
         f"{r.ratio:.2f}x", r.peer_name, r.target)
        for result in results for r in result.ratios
    ]  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines += [f"NOTE {r.name}: {note}" for r in results for note in r.notes]
    lines += [f"FAILED {r.name}: {r.error}" for r in results if r.error]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    import os
    import platform

    import torch

    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> int:
    import os

    from difflab.bench.suite import benchmarks_dir, run_benchmark, select

    chosen = select(args.only)
    if args.list:
        for b in chosen:
            print(f"{b.name:10s} {b.script:18s} {b.about}")
        return 0
    folder = benchmarks_dir(args.benchmarks_dir)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    info = {"size": size, "machine_before": machine_info()}
    results = []
    for i, bench in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {bench.name}: {bench.about}", file=sys.stderr, flush=True)
        result = run_benchmark(bench, folder, size=size)
        status = f"failed ({result.error})" if result.error else "done"
        print(
            f"[{i}/{len(chosen)}] {bench.name} {status} in {result.seconds:.0f} s", file=sys.stderr
        )
        results.append(result)
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report = info | {"benchmarks": {r.name: r.to_dict() for r in results}}
    table = format_summary(results)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 1 if any(r.error for r in results) else 0
