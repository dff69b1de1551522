"""`--train.mixed-precision auto`: bf16 autocast where the hardware computes bf16 natively,
fp32 where it would only emulate it.

Why: on a CPU with AMX tiles bf16 autocast made the fmnist-cpu training step 2.3x faster than
fp32 (docs/benchmarks.md); on an Ice Lake Xeon without AVX512-BF16 or AMX the same step ran
2.3x *slower* under bf16 (`difflab bench --quick --only unet`, 2026-12-02: 26.2 img/s bf16,
59.1 img/s fp32, batch 64). A fixed default is wrong on one of the two.
"""

from __future__ import annotations

import torch

AUTO = "auto"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX tiles: the instructions that make bf16 matmuls faster than fp32.
    PyTorch's probes are private, so an older or newer torch without them answers False
    (fp32: never the slow path)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            continue
    return False


def resolve_precision(requested: str, device: torch.device | str | None = None) -> str:
    """The mixed-precision mode to train with: `requested` unless it is "auto", which becomes
    "bf16" on a CUDA GPU that supports it or a CPU with native bf16, else "no" (fp32)."""
    if requested != AUTO:
        return requested
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "no"
    return "no"
