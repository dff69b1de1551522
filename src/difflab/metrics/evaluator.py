"""`ImageEval`: FID and KID of generated images against real data, in one object.

    from difflab.metrics import load_shipped_evaluator
    evaluator = load_shipped_evaluator()          # packaged classifier + test-set statistics
    report = evaluator.evaluate(samples_uint8)    # {"fid", "fid_floor", "kid_mean", ...}

Every FID comes with its real-data floor at the same n: the FID of n real *training* images
against the same reference. FID is biased upwards at small n (Chong & Forsyth 2020), so a
number means little without the floor next to it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from difflab.metrics.features import extract_features, feature_statistics
from difflab.metrics.fid import FrechetReference
from difflab.metrics.kid import KIDResult, kernel_inception_distance
from difflab.metrics.reference import (
    ReferenceStats,
    cache_key,
    cached_features,
    cached_reference_stats,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureModel:
    """A network, the layer whose pooled output is the feature, and what identifies it."""

    module: nn.Module
    layer: str
    weights_sha256: str
    preprocessing: dict[str, Any]
    name: str = "features"

    @property
    def low(self) -> float:
        return float(self.preprocessing.get("low", -0.5))

    @property
    def high(self) -> float:
        return float(self.preprocessing.get("high", 0.5))

    def _check_size(self, images: Any) -> None:
        shape = tuple(getattr(images, "shape", ()))
        want = tuple(self.preprocessing.get(k) for k in ("channels", "height", "width"))
        if None in want or len(shape) != 4 or shape[1:] == want:
            return
        raise ValueError(
            f"{self.name} expects images of shape (N, {want[0]}, {want[1]}, {want[2]}), got "
            f"{shape}; crop any padding (e.g. 32x32 -> 28x28) and keep the channel count"
        )

    def features(self, images: Any, *, batch_size: int = 500, progress: bool = False) -> Tensor:
        """(N, D) float32 features of uint8 images or float images in [low, high]."""
        self._check_size(images)
        return extract_features(
            self.module,
            images,
            layer=self.layer,
            low=self.low,
            high=self.high,
            batch_size=batch_size,
            progress=progress,
        )


@dataclass(frozen=True)
class FIDResult:
    fid: float
    n: int
    dim: int
    floor: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fid": self.fid,
            "fid_floor": self.floor,
            "n": self.n,
            "feature_dim": self.dim,
            "warnings": list(self.warnings),
        }


class ImageEval:
    """FID/KID of images against a reference set, with real-data floors.

    `reference` holds the reference mean/covariance (for FID). `real_images` (uint8, e.g. the
    training split) are what the floor at n is computed from; `reference_images` (uint8, the
    images behind `reference`) are needed for KID only. Both are optional: without them the
    floor / KID are unavailable and say so.
    """

    def __init__(
        self,
        feature_model: FeatureModel,
        reference: ReferenceStats,
        *,
        real_images: Any = None,
        reference_images: Any = None,
        dataset: str = "unknown",
        floor_seed: int = 0,
    ) -> None:
        self.feature_model = feature_model
        self.reference = reference
        self.real_images = real_images
        self.reference_images = reference_images
        self.dataset = dataset
        self.floor_seed = floor_seed
        self._frechet = FrechetReference(reference.mu, reference.sigma)
        self._reference_features: Tensor | None = None
        self._floors: dict[int, float] = {}

    @property
    def dim(self) -> int:
        return self.reference.dim

    def features(self, images: Any, *, progress: bool = False) -> Tensor:
        return self.feature_model.features(images, progress=progress)

    def fid_from_features(self, features: Tensor | np.ndarray, *, floor: bool = True) -> FIDResult:
        """FID of precomputed features (N, D) against the reference, with the floor at N."""
        n = len(features)
        notes = []
        if n <= self.dim:
            notes.append(
                f"n={n} <= feature dimension {self.dim}: the sample covariance is "
                "singular and FID is strongly biased; use n >> d"
            )
            warnings.warn(notes[-1], stacklevel=2)
        mu, sigma = feature_statistics(features)
        value = self._frechet.distance(mu, sigma)
        return FIDResult(value, n, self.dim, self.fid_floor(n) if floor else None, tuple(notes))

    def fid(self, samples: Any, *, floor: bool = True, progress: bool = False) -> FIDResult:
        """FID of samples (uint8, or float in the data range) against the reference."""
        return self.fid_from_features(self.features(samples, progress=progress), floor=floor)

    def fid_floor(self, n: int) -> float | None:
        """FID of n real training images (fixed random subset) against the reference."""
        if self.real_images is None:
            return None
        if n > len(self.real_images):
            log.warning("floor: only %d real images for n=%d", len(self.real_images), n)
            return None
        if n not in self._floors:
            stats = self._real_stats(n)
            self._floors[n] = self._frechet.distance(stats.mu, stats.sigma)
        return self._floors[n]

    def _cache_key(self, split: str, n: int) -> str:
        """On-disk cache key: these feature weights and preprocessing, this dataset/split/n."""
        return cache_key(
            weights_sha256=self.feature_model.weights_sha256,
            preprocessing=self.feature_model.preprocessing,
            dataset=self.dataset,
            split=split,
            n=n,
        )

    def _real_stats(self, n: int) -> ReferenceStats:
        pre = self.feature_model.preprocessing
        key = self._cache_key(f"train-seed{self.floor_seed}", n)

        def compute() -> tuple[np.ndarray, np.ndarray]:
            generator = torch.Generator().manual_seed(self.floor_seed)
            idx = torch.randperm(len(self.real_images), generator=generator)[:n].sort().values
            return feature_statistics(self.features(np.asarray(self.real_images)[idx.numpy()]))

        meta = {
            "dataset": self.dataset,
            "split": "train",
            "n": n,
            "seed": self.floor_seed,
            "feature_weights_sha256": self.feature_model.weights_sha256,
            "preprocessing": pre,
        }
        return cached_reference_stats(key, compute, meta=meta)

    def kid(
        self, samples: Any, *, subset_size: int = 1000, n_subsets: int = 100, seed: int = 0
    ) -> KIDResult:
        """KID of samples against the reference images' features (Bińkowski et al. 2018)."""
        return self.kid_from_features(
            self.features(samples), subset_size=subset_size, n_subsets=n_subsets, seed=seed
        )

    def kid_from_features(self, features: Tensor, **kwargs: Any) -> KIDResult:
        return kernel_inception_distance(features, self.reference_features(), **kwargs)

    def reference_features(self) -> Tensor:
        if self.reference_images is None:
            raise ValueError(
                "KID needs the reference images: build ImageEval with "
                "reference_images=... (load_shipped_evaluator does this when the "
                "dataset is available)"
            )
        if self._reference_features is None:
            self._reference_features = torch.from_numpy(self._cached_reference_features())
        return self._reference_features

    def _cached_reference_features(self) -> np.ndarray:
        """The reference images' features, from the on-disk cache after the first time."""
        pre = self.feature_model.preprocessing
        split = str(self.reference.meta.get("split", "reference"))
        n = len(self.reference_images)
        key = self._cache_key(f"{split}-features", n)
        meta = {"dataset": self.dataset, "split": split, "n": n, "preprocessing": pre,
                "feature_weights_sha256": self.feature_model.weights_sha256}  # fmt: skip
        return cached_features(
            key, lambda: self.features(self.reference_images).float().numpy(), meta=meta
        )

    def evaluate(
        self, samples: Any, *, kid: bool = True, kid_subsets: int = 100, progress: bool = False
    ) -> dict[str, Any]:
        """FID (+ floor at the same n) and KID in one JSON-able dict; features computed once."""
        features = self.features(samples, progress=progress)
        report = self.fid_from_features(features).to_dict()
        if kid and self.reference_images is not None:
            report.update(self.kid_from_features(features, n_subsets=kid_subsets).to_dict())
        report["feature_model"] = self.feature_model.name
        report["feature_weights_sha256"] = self.feature_model.weights_sha256
        report["reference"] = {k: self.reference.meta.get(k) for k in ("dataset", "split", "n")}
        return report
