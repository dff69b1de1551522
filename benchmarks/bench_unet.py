"""Training-step speed of difflab's UNet presets against diffusers' UNet2DModel, on this CPU.

    python benchmarks/bench_unet.py                  # fmnist-cpu vs diffusers, fp32 and bf16
    python benchmarks/bench_unet.py --presets all    # the preset table (params, GFLOP, img/s, MFU)
    python benchmarks/bench_unet.py --compile        # + difflab's presets under torch.compile

A training step = forward, MSE loss, backward, AdamW step, on a batch of 28x28 1-channel
images (32x32 3-channel for cifar10). FLOPs come from torch's FlopCounterMode (convolutions,
matmuls, attention; forward + backward). MFU = achieved FLOP/s over the matmul peak of the
same dtype, measured in the same run; a compiled case (`--compile`, as `--train.compile` runs
it) is timed after its first step, which compiles or loads its kernels from difflab's on-disk
cache (the seconds it took are reported). The cases are timed round-robin (one step of each, over
and over) and reported as medians, so load from other processes hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import count_flops, format_table, make_train_step, time_round_robin  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class Case:
    name: str
    dtype: str
    step: object
    batch: int
    params: int = 0
    flops_per_img: float = 0.0
    times: list[float] = field(default_factory=list)
    setup_s: float = 0.0  # a compiled case's first step (compile, or load from the cache)


def build_model(spec: str, in_channels: int):
    """'difflab:<preset>' or 'diffusers:<width>'."""
    kind, _, arg = spec.partition(":")
    torch.manual_seed(0)
    if kind == "difflab":
        from difflab.models import build_unet

        return build_unet(arg, in_channels=in_channels)
    from difflab.models.diffusers_adapter import build_diffusers_unet

    return build_diffusers_unet(width=int(arg), in_channels=in_channels)


def make_case(spec, dtype, *, batch, size, in_channels, channels_last, compile=False) -> Case:
    model = build_model(spec, in_channels)
    x = torch.randn(batch, in_channels, size, size)
    if channels_last:
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    t = torch.randint(0, 1000, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    flops = count_flops(make_train_step(model, x, t, dtype=DTYPES[dtype])) / batch
    params = sum(p.numel() for p in model.parameters())
    setup = 0.0
    if compile:
        from difflab.training.compiled import compile_for_training

        compile_for_training(model)
    step = make_train_step(model, x, t, dtype=DTYPES[dtype], optimizer=opt)
    if compile:
        start = time.perf_counter()
        step()
        setup = time.perf_counter() - start
    name = f"{spec}+compile" if compile else spec
    return Case(name, dtype, step, batch, params, flops, setup_s=setup)


def matmul_case(dtype: str, n: int = 2048) -> Case:
    a, b = torch.randn(n, n).to(DTYPES[dtype]), torch.randn(n, n).to(DTYPES[dtype])
    return Case(f"matmul {n}^3", dtype, lambda: a @ b, 1, 0, 2 * n**3)


def closest_diffusers_width(target: float, measure, widths=range(8, 73, 8)) -> int:
    """The diffusers example width whose `measure(width)` is closest to target (log scale)."""
    import math

    return min(widths, key=lambda w: abs(math.log(measure(w) / target)))


def diffusers_flops(width: int, batch: int = 2) -> float:
    model = build_model(f"diffusers:{width}", 1)
    x, t = torch.randn(batch, 1, 28, 28), torch.randint(0, 1000, (batch,))
    return count_flops(make_train_step(model, x, t)) / batch


def diffusers_params(width: int) -> int:
    return sum(p.numel() for p in build_model(f"diffusers:{width}", 1).parameters())


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--presets", default="fmnist-cpu", help="comma list of difflab presets, or 'all'"
    )
    p.add_argument("--no-diffusers", action="store_true", help="skip the diffusers peers")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--channels-last", action="store_true", help="channels_last models and inputs")
    p.add_argument(
        "--compile", action="store_true", help="also difflab's presets under torch.compile"
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    return p.parse_args(argv)


def build_cases(args) -> list[Case]:
    from difflab.models import UNET_PRESETS

    presets = list(UNET_PRESETS) if args.presets == "all" else args.presets.split(",")
    specs = [f"difflab:{p}" for p in presets]
    if not args.no_diffusers:
        ref = build_model(f"difflab:{presets[0]}", 1)
        ref_params = sum(p.numel() for p in ref.parameters())
        x, t = torch.randn(2, 1, 28, 28), torch.randint(0, 1000, (2,))
        ref_flops = count_flops(make_train_step(ref, x, t)) / 2
        w_params = closest_diffusers_width(ref_params, diffusers_params)
        w_flops = closest_diffusers_width(ref_flops, diffusers_flops)
        specs += sorted({f"diffusers:{w_params}", f"diffusers:{w_flops}"})
    cases = []
    for dtype in args.dtypes.split(","):
        cases.append(matmul_case(dtype))
        for spec in specs:
            rgb = spec == "difflab:cifar10"
            compiles = (False, True) if args.compile and spec.startswith("difflab:") else (False,)
            for compiled in compiles:
                cases.append(
                    make_case(spec, dtype, batch=args.batch, size=32 if rgb else 28,
                              in_channels=3 if rgb else 1, channels_last=args.channels_last,
                              compile=compiled)
                )  # fmt: skip
    return cases


def summarise(cases: list[Case]) -> list[dict]:
    peaks = {c.dtype: c.flops_per_img / statistics.median(c.times) for c in cases if c.params == 0}
    rows = []
    for c in cases:
        sec = statistics.median(c.times)
        row = {"model": c.name, "dtype": c.dtype, "batch": c.batch}
        if c.params:
            row |= {
                "params_M": round(c.params / 1e6, 2),
                "GFLOP/img": round(c.flops_per_img / 1e9, 3),
                "img/s": round(c.batch / sec, 1),
                "GFLOP/s": round(c.flops_per_img * c.batch / sec / 1e9, 1),
                "MFU": round(c.flops_per_img * c.batch / sec / peaks[c.dtype], 3),
            }
            if c.setup_s:
                row["compile_s"] = round(c.setup_s, 1)
        else:
            row |= {"GFLOP/s": round(peaks[c.dtype] / 1e9, 1), "MFU": 1.0}
        row["spread"] = f"{min(c.times) / sec:.2f}-{max(c.times) / sec:.2f}"
        rows.append(row)
    return rows


def print_ratios(rows: list[dict]) -> None:
    by = {(r["model"], r["dtype"]): r for r in rows if "img/s" in r}
    for (model, dtype), ours in by.items():
        if not model.startswith("difflab:"):
            continue
        for (peer, peer_dtype), theirs in by.items():
            if peer.startswith("diffusers:") and peer_dtype == dtype:
                print(
                    f"{dtype}: {model} vs {peer} ({theirs['params_M']}M params, "
                    f"{theirs['GFLOP/img']} GFLOP/img): {ours['img/s'] / theirs['img/s']:.2f}x img/s, "
                    f"{ours['MFU'] / theirs['MFU']:.2f}x MFU"
                )


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    cases = build_cases(args)
    time_round_robin(cases, repeats=args.repeats, warmup=args.warmup)
    rows = summarise(cases)
    cols = ["model", "dtype", "batch", "params_M", "GFLOP/img", "img/s", "GFLOP/s", "MFU", "spread"]
    cols += ["compile_s"] if args.compile else []
    print(format_table(rows, cols))
    print_ratios(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
