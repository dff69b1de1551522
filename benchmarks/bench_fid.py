"""FID from features: difflab vs pytorch-fid's method vs torchmetrics' method.

Same feature statistics for every method; each timed `--repeats` times, median reported.

    python benchmarks/bench_fid.py                      # d=2048 and d=256, n=10000
    python benchmarks/bench_fid.py --dims 2048 --n 1000  # n <= d: singular covariances

Peers:
- pytorch-fid: `calculate_frechet_distance` (scipy.linalg.sqrtm of S1 S2, eps retry,
  imaginary-part check), reimplemented inline below line by line (pytorch-fid itself needs
  torchvision, which this project does not install).
- torchmetrics: `torchmetrics.image.fid._compute_fid` (torch.linalg.eigvals of S1 S2), if
  torchmetrics is installed.
- difflab: `frechet_distance` (eigh of S1, eigvalsh of S1^1/2 S2 S1^1/2) and
  `FrechetReference.distance` (reference square root precomputed, the case of repeated evals).
- exact reference for agreement: 2 * nuclear norm of S1^1/2 S2^1/2 via SVD (linear, not
  square-root, sensitivity to round-off in null spaces).

Features are synthetic but shaped like pool features: ReLU of a low-rank Gaussian plus noise.
Results: JSON on stdout, a table on stderr. Thread count: --threads (default 1: this machine is
shared; all methods get the same).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings


def make_features(n: int, d: int, *, shift: float, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    k = min(256, d)
    mix = torch.randn(k, d, generator=torch.Generator().manual_seed(1234)) / k**0.5
    z = torch.randn(n, k, generator=g) + shift
    return torch.relu(z @ mix + 0.3 * torch.randn(n, d, generator=g))


def statistics_of(features):
    from difflab.metrics import feature_statistics

    return feature_statistics(features)


def pytorch_fid_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0 `calculate_frechet_distance`, same steps."""
    import numpy as np
    from scipy import linalg

    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy's `disp` deprecation
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError(f"Imaginary component {m}")
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def exact_by_svd(mu1, sigma1, mu2, sigma2):
    import numpy as np

    def sqrt_psd(s):
        w, v = np.linalg.eigh((s + s.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    nuclear = np.linalg.svd(sqrt_psd(sigma1) @ sqrt_psd(sigma2), compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * nuclear)


def methods(mu1, sigma1, mu2, sigma2):
    import torch

    from difflab.metrics import FrechetReference, frechet_distance

    out = {
        "difflab": lambda: frechet_distance(mu1, sigma1, mu2, sigma2),
        "pytorch-fid (scipy sqrtm)": lambda: pytorch_fid_frechet(mu1, sigma1, mu2, sigma2),
    }
    ref = FrechetReference(mu1, sigma1)
    out["difflab, reference sqrt cached"] = lambda: ref.distance(mu2, sigma2)
    try:
        from torchmetrics.image.fid import _compute_fid
    except ImportError:
        print("torchmetrics not installed: skipping its method", file=sys.stderr)
    else:
        tensors = [torch.from_numpy(a) for a in (mu1, sigma1, mu2, sigma2)]
        out["torchmetrics (eigvals)"] = lambda: float(_compute_fid(*tensors))
    return out


def time_method(fn, repeats: int) -> tuple[float, float | str]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            value = fn()
        except Exception as err:  # a peer failing is a result, not a crash
            return float("nan"), f"error: {err}"
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def run_case(n: int, d: int, repeats: int) -> dict:
    mu1, sigma1 = statistics_of(make_features(n, d, shift=0.0, seed=0))
    mu2, sigma2 = statistics_of(make_features(n, d, shift=0.05, seed=1))
    exact = exact_by_svd(mu1, sigma1, mu2, sigma2)
    rows = {}
    for name, fn in methods(mu1, sigma1, mu2, sigma2).items():
        reps = 3 if "scipy" in name and d > 1000 else repeats  # sqrtm is slow; median of 3
        seconds, value = time_method(fn, reps)
        error = abs(value - exact) if isinstance(value, float) else None
        rows[name] = {
            "seconds": seconds,
            "fid": value,
            "abs_error_vs_exact": error,
            "repeats": reps,
        }
    base = rows["pytorch-fid (scipy sqrtm)"]["seconds"]
    for row in rows.values():
        row["speedup_vs_pytorch_fid"] = base / row["seconds"] if row["seconds"] > 0 else None
    return {"n": n, "d": d, "exact_fid": exact, "methods": rows}


def print_table(result: dict) -> None:
    print(f"\nn={result['n']} d={result['d']} exact FID {result['exact_fid']:.6f}", file=sys.stderr)
    for name, row in result["methods"].items():
        fid = row["fid"] if isinstance(row["fid"], str) else f"{row['fid']:.6f}"
        err = row["abs_error_vs_exact"]
        print(
            f"  {name:34s} {row['seconds'] * 1000:9.1f} ms  x{row['speedup_vs_pytorch_fid']:6.1f}"
            f"  fid {fid}  |err| {err if err is None else f'{err:.2e}'}",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2048, 256])
    parser.add_argument("--n", type=int, default=10000, help="feature vectors per set")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import os

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))  # before numpy/torch load BLAS
    import torch

    torch.set_num_threads(args.threads)
    results = [run_case(args.n, d, args.repeats) for d in args.dims]
    for result in results:
        print_table(result)
    json.dump(
        {"threads": args.threads, "torch": torch.__version__, "results": results},
        sys.stdout,
        indent=2,
    )
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
