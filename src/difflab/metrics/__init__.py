"""Feature extractors, FID, KID, reference statistics and `ImageEval`.

    from difflab.metrics import load_shipped_evaluator
    evaluator = load_shipped_evaluator()
    evaluator.evaluate(samples)  # {"fid", "fid_floor", "n", "feature_dim", "kid_mean", ...}

Imports scipy/matplotlib nowhere at module level; never imports training or samplers.
"""

from difflab.metrics.evaluator import FeatureModel, FIDResult, ImageEval
from difflab.metrics.features import extract_features, feature_statistics
from difflab.metrics.fid import FrechetReference, frechet_distance
from difflab.metrics.kid import KIDResult, kernel_inception_distance, mmd2_unbiased
from difflab.metrics.reference import (
    ReferenceStats,
    cache_dir,
    load_reference_stats,
    save_reference_stats,
)
from difflab.metrics.shipped import load_feature_model, load_shipped_evaluator
from difflab.metrics.steps import X0FidTracker, every_nth_step

__all__ = [
    "FIDResult",
    "FeatureModel",
    "FrechetReference",
    "ImageEval",
    "KIDResult",
    "ReferenceStats",
    "X0FidTracker",
    "cache_dir",
    "every_nth_step",
    "extract_features",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "load_feature_model",
    "load_reference_stats",
    "load_shipped_evaluator",
    "mmd2_unbiased",
    "save_reference_stats",
]
