"""Reference feature statistics (mean, covariance) on disk: shipped assets and a local cache.

Files are safetensors holding float64 `mu` (D,) and `sigma` (D, D), with a JSON `meta` string
that says what they were computed from. Cache entries are keyed by a hash of everything that
changes the numbers: feature weights sha256, preprocessing, dataset, split and n.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from difflab.files import atomic_write_bytes, sha256_file


@dataclass(frozen=True)
class ReferenceStats:
    """Mean and covariance of features of n real images, and what they were computed from."""

    mu: np.ndarray
    sigma: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int | None:
        return self.meta.get("n")

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


def save_reference_stats(
    path: str | Path, mu: np.ndarray, sigma: np.ndarray, *, meta: dict[str, Any]
) -> Path:
    """Write float64 mu/sigma and `meta` (JSON) atomically; returns the path."""
    from safetensors.numpy import save

    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"mu must be (D,) and sigma (D, D); got {mu.shape} and {sigma.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = save(
        {"mu": mu, "sigma": np.ascontiguousarray(sigma)}, metadata={"meta": json.dumps(meta)}
    )
    return atomic_write_bytes(path, data)


def load_reference_stats(path: str | Path, *, sha256: str | None = None) -> ReferenceStats:
    """Read statistics written by `save_reference_stats`; verify the file's sha256 if given."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference statistics not found: {path}")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise ValueError(f"{path}: sha256 {actual} does not match the expected {sha256}")
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
        return ReferenceStats(f.get_tensor("mu"), f.get_tensor("sigma"), meta)


def cache_dir() -> Path:
    """$DIFFLAB_CACHE/fid-stats, else ~/.cache/difflab/fid-stats."""
    root = os.environ.get("DIFFLAB_CACHE") or Path.home() / ".cache" / "difflab"
    return Path(root).expanduser() / "fid-stats"


def cache_key(
    *, weights_sha256: str, preprocessing: dict[str, Any], dataset: str, split: str, n: int
) -> str:
    """Stable hash of everything that determines a set of reference statistics."""
    blob = json.dumps(
        {
            "weights": weights_sha256,
            "pre": preprocessing,
            "dataset": dataset,
            "split": split,
            "n": n,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_reference_stats(
    key: str, compute: Callable[[], tuple[np.ndarray, np.ndarray]], *, meta: dict[str, Any]
) -> ReferenceStats:
    """Load the statistics stored under `key`, or compute, store and return them."""
    path = cache_dir() / f"{key}.safetensors"
    if path.is_file():
        return load_reference_stats(path)
    mu, sigma = compute()
    save_reference_stats(path, mu, sigma, meta=dict(meta, cache_key=key))
    return ReferenceStats(
        np.asarray(mu, np.float64), np.asarray(sigma, np.float64), dict(meta, cache_key=key)
    )


def cached_features(key: str, compute: Callable[[], np.ndarray], *, meta: dict[str, Any]):
    """Features (N, D) stored under `key` (KID needs the reference images' features, not just
    their statistics), or compute, store atomically and return them; float32 numpy."""
    from safetensors.numpy import load_file, save

    path = cache_dir() / f"{key}-features.safetensors"
    if path.is_file():
        return load_file(str(path))["features"]
    features = np.ascontiguousarray(np.asarray(compute(), np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save({"features": features}, metadata={"meta": json.dumps(meta)}))
    return features
