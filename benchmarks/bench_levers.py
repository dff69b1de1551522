"""The speed levers of a CPU training step, one at a time, against the plain fp32 step.

    python benchmarks/bench_levers.py                  # all levers, fmnist-cpu, batch 256
    python benchmarks/bench_levers.py --no-compile     # skip torch.compile (minutes to build)

Each lever changes one thing of a training step of difflab's UNet (forward, MSE, backward,
AdamW step on random 28x28 images): bf16 autocast, channels_last, AdamW's foreach and fused
kernels, torch.compile (its compile time is reported beside its gain), the batch size, and the
channel widths by resolution (fmnist-cpu's widening pyramid against uniform widths of about
the same parameter count). Fused attention is timed on its own: F.scaled_dot_product_attention
against softmax(QK^T/sqrt(d))V written out, at the shapes of the UNet's attention layers.

All cases of a group are timed round-robin (one step of each, over and over) and reported as
medians, so load from other processes hits them alike. The last line of stdout is JSON:
{"rows": [{"lever", "case", "baseline", "img_per_s", "baseline_img_per_s", ...}]}.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import format_table, make_train_step, time_round_robin  # noqa: E402


@dataclass
class Case:
    name: str
    step: Callable[[], object]
    batch: int
    params: int = 0
    setup_s: float = 0.0  # e.g. torch.compile's first call
    times: list[float] = field(default_factory=list)

    @property
    def img_per_s(self) -> float:
        return self.batch / statistics.median(self.times)


def unet_step(
    *, preset: str, batch: int, bf16: bool, channels_last: bool = True, adamw: str = "for-loop",
    compile: bool = False, channels: tuple[int, ...] | None = None, native_norm: bool = False,
) -> Case:  # fmt: skip
    """One training step closure of a fresh UNet with the given levers.

    channels_last: the UNet's activation layout (its default, True, or NCHW); native_norm:
    PyTorch's own GroupNorm kernel on channels_last activations instead of difflab's layout
    round trip (blocks.GroupNorm).
    """
    from difflab.models import build_unet
    from difflab.models.blocks import GroupNorm

    torch.manual_seed(0)
    model = build_unet(preset, in_channels=1, **({"channels": channels} if channels else {}))
    model.channels_last = channels_last
    if native_norm:
        for module in model.modules():
            if isinstance(module, GroupNorm):
                module.__class__ = torch.nn.GroupNorm
    x, t = torch.randn(batch, 1, 28, 28), torch.randint(0, 1000, (batch,))
    kernel = {
        "for-loop": {"foreach": False},
        "foreach": {"foreach": True},
        "fused": {"fused": True},
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **kernel[adamw])
    setup = 0.0
    if compile:
        model = torch.compile(model)
    step = make_train_step(model, x, t, dtype=torch.bfloat16 if bf16 else None, optimizer=optimizer)
    if compile:  # the first call compiles: that is the price paid once per run
        start = time.perf_counter()
        step()
        setup = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    return Case("", step, batch, params, setup)


def group(lever: str, baseline: Case, others: list[Case], args) -> list[dict]:
    """Times baseline and others together; one row per other case, against the baseline."""
    time_round_robin([baseline, *others], repeats=args.repeats, warmup=args.warmup)
    rows = []
    for case in others:
        rows.append({
            "lever": lever, "case": case.name, "baseline": baseline.name,
            "img_per_s": round(case.img_per_s, 2),
            "baseline_img_per_s": round(baseline.img_per_s, 2),
            "speedup": round(case.img_per_s / baseline.img_per_s, 3),
            "params_M": round(case.params / 1e6, 2),
            "baseline_params_M": round(baseline.params / 1e6, 2),
            "setup_s": round(case.setup_s, 1),
        })  # fmt: skip
    return rows


def named(case: Case, name: str) -> Case:
    case.name = name
    return case


def precision_and_layout(args) -> list[dict]:
    common = {"preset": args.preset, "batch": args.batch}
    base = named(unet_step(**common, bf16=False, channels_last=False), "fp32 NCHW")
    others = [
        named(unet_step(**common, bf16=True, channels_last=False), "bf16 autocast NCHW"),
        named(unet_step(**common, bf16=False), "fp32 channels_last"),
        named(unet_step(**common, bf16=True), "bf16 channels_last (default)"),
        named(
            unet_step(**common, bf16=True, native_norm=True),
            "bf16 channels_last, PyTorch's GroupNorm kernel",
        ),
    ]
    return group("precision/layout", base, others, args)


def optimizer_kernels(args) -> list[dict]:
    common = {"preset": args.preset, "batch": args.batch, "bf16": True}
    base = named(unet_step(**common, adamw="for-loop"), "bf16, AdamW for-loop")
    others = [
        named(unet_step(**common, adamw="foreach"), "bf16, AdamW foreach"),
        named(unet_step(**common, adamw="fused"), "bf16, AdamW fused"),
    ]
    return group("AdamW kernel", base, others, args)


def compiled(args) -> list[dict]:
    """bf16 and fp32 each against their own eager step: a CPU without native bf16 (e.g. Ice
    Lake) trains in fp32, where the elementwise share that compilation fuses is different."""
    rows = []
    for precision, bf16 in (("bf16", True), ("fp32", False)):
        common = {"preset": args.preset, "batch": args.batch, "bf16": bf16, "adamw": "foreach"}
        base = named(unet_step(**common), f"{precision} eager")
        others = [named(unet_step(**common, compile=True), f"{precision} torch.compile")]
        rows += group(f"torch.compile, {precision}", base, others, args)
    return rows


def batch_sizes(args) -> list[dict]:
    common = {"preset": args.preset, "bf16": True, "adamw": "foreach"}
    base = named(unet_step(**common, batch=args.batch), f"bf16 batch {args.batch}")
    others = [
        named(unet_step(**common, batch=b), f"bf16 batch {b}")
        for b in args.batch_sizes
        if b != args.batch
    ]
    return group("batch size", base, others, args)


def widths(args) -> list[dict]:
    """The widening pyramid against uniform widths with about its parameter count."""
    common = {"preset": args.preset, "batch": args.batch, "bf16": True, "adamw": "foreach"}
    base = named(unet_step(**common), f"{args.preset} widths")
    others = [
        named(unet_step(**common, channels=c), f"channels {'-'.join(map(str, c))}")
        for c in ((128, 128, 128, 128), (64, 128, 128, 128))
    ]
    return group("widths by resolution", base, others, args)


def attention(args) -> list[dict]:
    """F.scaled_dot_product_attention against the written-out softmax(QK^T/sqrt(d))V."""
    rows = []
    for tokens, heads, d in ((16, 4, 64), (49, 2, 64), (196, 1, 64)):
        shape = (args.batch, heads, tokens, d)
        q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))

        def naive(q=q, k=k, v=v):
            weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
            (weights @ v).sum().backward()

        def fused(q=q, k=k, v=v):
            F.scaled_dot_product_attention(q, k, v).sum().backward()

        base, other = Case("written out", naive, args.batch), Case("SDPA", fused, args.batch)
        rows += group(f"attention {tokens} tokens x {heads} heads", base, [other], args)
    return rows


LEVERS = {
    "precision": precision_and_layout, "adamw": optimizer_kernels, "compile": compiled,
    "batch": batch_sizes, "widths": widths, "attention": attention,
}  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--preset", default="fmnist-cpu", help="difflab UNet preset")
    parser.add_argument("--batch", type=int, default=256, help="batch of every case but 'batch'")
    parser.add_argument(
        "--batch-sizes", type=lambda s: [int(b) for b in s.split(",")], default=[64, 128, 512]
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", default=",".join(LEVERS), help=f"comma list of {list(LEVERS)}")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(LEVERS))
    if unknown:
        print(f"--only: unknown levers {unknown}; choose from {list(LEVERS)}", file=sys.stderr)
        return 2
    if args.no_compile and "compile" in chosen:
        chosen.remove("compile")
    rows: list[dict] = []
    for name in chosen:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        rows += LEVERS[name](args)
    columns = ["lever", "case", "img_per_s", "baseline", "baseline_img_per_s", "speedup"]
    print(format_table(rows, [*columns, "setup_s"]), file=sys.stderr)
    print(json.dumps({"preset": args.preset, "batch": args.batch, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
