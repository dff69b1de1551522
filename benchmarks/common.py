"""Small timing helpers shared by the benchmarks: medians of repeats, matmul peak, FLOP counts.

Figures on a shared machine are noisy: report medians and ratios measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch


def median_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_round_robin(cases, *, repeats: int, warmup: int) -> None:
    """Times `case.step()` of every case in turns (one step of each, over and over), appending
    seconds to `case.times`: load from other processes then hits all cases alike."""
    for case in cases:
        for _ in range(warmup):
            case.step()
    for _ in range(repeats):
        for case in cases:
            start = time.perf_counter()
            case.step()
            case.times.append(time.perf_counter() - start)


def matmul_peak(dtype: torch.dtype = torch.float32, *, n: int = 2048, repeats: int = 5) -> float:
    """Measured FLOP/s of an n x n x n matmul in `dtype` (the best this CPU does on dense work)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    seconds = median_time(lambda: a @ b, repeats=repeats, warmup=2)
    return 2 * n**3 / seconds


def autocast(dtype: torch.dtype | None):
    """bf16 autocast context on CPU, or nothing for fp32 (dtype None or float32)."""
    if dtype in (None, torch.float32):
        return nullcontext()
    return torch.autocast("cpu", dtype=dtype)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn`, counted by torch's FlopCounterMode (matmuls/convs/attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def make_train_step(model, x, t, *, dtype=None, optimizer=None):
    """A closure doing forward + MSE loss + backward (+ optimiser step when given)."""
    target = torch.randn_like(x)

    def step():
        with autocast(dtype):
            loss = torch.nn.functional.mse_loss(model(x, t).float(), target)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            model.zero_grad(set_to_none=True)
        return loss

    return step


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain fixed-width text table."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)
