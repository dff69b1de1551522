"""The benchmark suite: which scripts run, with which arguments, and how their output is read.

The scripts live in the checkout's `benchmarks/` folder (not in the installed package). Each
runs in its own Python process, so one benchmark's threads, allocator and imports never colour
the next; each prints JSON (stdout, or a file for bench_unet.py) that `ratios.py` reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from difflab.bench import ratios
from difflab.bench.ratios import Ratio

Size = Literal["smoke", "quick", "full"]
SIZES: tuple[Size, ...] = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Benchmark:
    """A script, its arguments at each size, and the function reading its JSON into ratios."""

    name: str
    script: str
    about: str
    args: dict[Size, tuple[str, ...]]
    extract: Callable[[Any], list[Ratio]]
    json_file: bool = False  # results come through `--json FILE` rather than stdout
    notes: Callable[[Any], list[str]] | None = None  # lines the table prints below the ratios


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "unet", "bench_unet.py",
            "training step img/s, FLOPs/img and MFU: difflab UNet vs diffusers UNet2DModel",
            {"smoke": ("--batch", "4", "--repeats", "1", "--warmup", "0", "--dtypes", "fp32"),
             "quick": ("--batch", "64", "--repeats", "3", "--warmup", "1", "--compile"),
             "full": ("--compile",)},
            ratios.unet_ratios, json_file=True,
        ),
        Benchmark(
            "levers", "bench_levers.py",
            "speed levers of a training step (bf16, channels_last, AdamW kernels, compile, "
            "batch, widths, fused attention), each against the step without it",
            {"smoke": ("--batch", "4", "--batch-sizes", "2", "--repeats", "1", "--warmup", "0",
                       "--only", "precision,attention"),
             "quick": ("--batch", "128", "--batch-sizes", "64,256", "--repeats", "3"),
             "full": ()},
            ratios.lever_ratios,
        ),
        Benchmark(
            "samplers", "bench_samplers.py",
            "sampler arithmetic per step vs diffusers' scheduler loops",
            {"smoke": ("--steps", "2", "--repeats", "1"),
             "quick": ("--steps", "25", "--repeats", "5"),
             "full": ()},
            ratios.sampler_ratios,
        ),
        Benchmark(
            "fid", "bench_fid.py",
            "FID from features vs pytorch-fid's method and torchmetrics",
            {"smoke": ("--dims", "64", "--n", "256", "--repeats", "1"),
             "quick": ("--dims", "2048", "--n", "5000", "--repeats", "3"),
             "full": ()},
            ratios.fid_ratios,
        ),
        Benchmark(
            "data", "bench_data.py",
            "Fashion-MNIST batches/s: InMemoryBatches vs a per-item DataLoader",
            {"smoke": ("--runs", "1"), "quick": ("--runs", "3"),
             "full": ("--runs", "5", "--workers", "0", "2")},
            ratios.data_ratios,
        ),
        Benchmark(
            "learner", "bench_learner.py",
            "Learner + standard callbacks step time vs a bare PyTorch loop",
            {"smoke": ("--steps", "3", "--repeats", "1", "--batch-size", "8"),
             "quick": ("--steps", "20", "--repeats", "3"),
             "full": ()},
            ratios.learner_ratios,
        ),
        Benchmark(
            "e2e", "bench_e2e.py",
            "end to end at equal training wall-clock: FMNIST-FID of difflab vs diffusers' recipe "
            "and lucidrains' denoising-diffusion-pytorch",
            {"smoke": ("--minutes", "0.05", "--n", "64", "--limit", "1024", "--threads", "1"),
             "quick": ("--minutes", "1", "--n", "512", "--threads", "1"),
             "full": ("--minutes", "30", "--n", "2048")},
            ratios.e2e_ratios, notes=ratios.e2e_notes,
        ),
    ]
}  # fmt: skip


@dataclass
class BenchResult:
    """What one benchmark run gave: its ratios, its raw JSON, or why it failed."""

    name: str
    command: list[str]
    seconds: float = 0.0
    ratios: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "ratios": [r.to_dict() for r in self.ratios],
            "notes": self.notes,
            "raw": self.raw,
        }


def benchmarks_dir(override: str | Path | None = None) -> Path:
    """The checkout's benchmarks/ folder (src layout: three levels above difflab/__init__.py)."""
    import difflab

    folder = (
        Path(override) if override else Path(difflab.__file__).resolve().parents[2] / "benchmarks"
    )
    if not (folder / "bench_unet.py").is_file():
        raise FileNotFoundError(
            f"no benchmark scripts in {folder}: `difflab bench` runs the scripts of a source "
            "checkout (git clone + pip install -e .); pass --benchmarks-dir to point at one"
        )
    return folder


def select(only: str | None) -> list[Benchmark]:
    """The benchmarks named in a comma list (all when None), in suite order."""
    if not only:
        return list(BENCHMARKS.values())
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"--only: unknown {unknown}; choose from {', '.join(BENCHMARKS)}")
    return [b for b in BENCHMARKS.values() if b.name in names]


def parse_json_output(text: str) -> Any:
    """The JSON a script printed: all of stdout, or else its last line that is JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for line in reversed(text.strip().splitlines()):
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise ValueError("the script printed no JSON on stdout")


def _child_env() -> dict[str, str]:
    """The parent's environment, with this difflab first on the path of the child."""
    import difflab

    src = str(Path(difflab.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def run_benchmark(
    bench: Benchmark, folder: Path, *, size: Size, capture_stderr: bool = False
) -> BenchResult:
    """Run one script in a fresh process; its stderr (progress, tables) passes through."""
    command = [sys.executable, str(folder / bench.script), *bench.args[size]]
    with tempfile.TemporaryDirectory() as tmp:
        json_path = Path(tmp) / "result.json"
        if bench.json_file:
            command += ["--json", str(json_path)]
        result = BenchResult(bench.name, command)
        start = time.perf_counter()
        proc = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture_stderr else None,
            text=True,
            env=_child_env(),
        )
        result.seconds = time.perf_counter() - start
        if proc.returncode != 0:
            tail = (proc.stderr or "").strip().splitlines()[-5:]
            result.error = f"exit status {proc.returncode}" + (
                ": " + " | ".join(tail) if tail else ""
            )
            return result
        try:
            text = json_path.read_text() if bench.json_file else proc.stdout
            result.raw = parse_json_output(text)
            result.ratios = bench.extract(result.raw)
            result.notes = bench.notes(result.raw) if bench.notes else []
        except (ValueError, KeyError, TypeError, OSError, StopIteration) as err:
            result.error = f"could not read its output: {type(err).__name__}: {err}"
    return result
