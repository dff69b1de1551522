"""ImageEval: FID composition, floors and their disk cache, KID, warnings, x0-FID tracker,
and the shipped evaluator on real Fashion-MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from difflab.metrics import (
    FeatureModel,
    ImageEval,
    X0FidTracker,
    every_nth_step,
    feature_statistics,
    frechet_distance,
)
from difflab.metrics.kid import kernel_inception_distance
from difflab.metrics.reference import ReferenceStats, cache_dir
from difflab.models.classifier import FashionClassifier

ASSETS = Path(__file__).resolve().parents[1] / "src" / "difflab" / "assets"


def _images(n: int, *, brightness: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, brightness, size=(n, 1, 28, 28))
    return base.astype(np.uint8)


@pytest.fixture()
def evaluator(tmp_path, monkeypatch) -> ImageEval:
    monkeypatch.setenv("DIFFLAB_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = FashionClassifier(widths=(4, 8)).eval()
    feature_model = FeatureModel(model, "pool", "f" * 64, {"low": -0.5, "high": 0.5}, name="tiny")
    test = _images(600, brightness=200, seed=1)
    mu, sigma = feature_statistics(feature_model.features(test))
    reference = ReferenceStats(mu, sigma, {"dataset": "synthetic", "split": "test", "n": 600})
    return ImageEval(
        feature_model,
        reference,
        real_images=_images(800, brightness=200, seed=2),
        reference_images=test,
        dataset="synthetic",
    )


def test_fid_is_frechet_distance_of_feature_statistics(evaluator) -> None:
    samples = _images(100, brightness=256, seed=3)
    mu, sigma = feature_statistics(evaluator.features(samples))
    expected = frechet_distance(evaluator.reference.mu, evaluator.reference.sigma, mu, sigma)
    result = evaluator.fid(samples, floor=False)
    assert result.fid == pytest.approx(expected, rel=1e-9) and result.n == 100
    as_float = torch.from_numpy(samples).float() / 255 - 0.5
    assert evaluator.fid(as_float, floor=False).fid == pytest.approx(result.fid, rel=1e-4)


def test_floor_uses_seeded_real_subset_and_is_cached_on_disk(evaluator) -> None:
    floor = evaluator.fid_floor(300)
    idx = torch.randperm(800, generator=torch.Generator().manual_seed(0))[:300].sort().values
    mu, sigma = feature_statistics(evaluator.features(evaluator.real_images[idx.numpy()]))
    ref = evaluator.reference
    assert floor == pytest.approx(frechet_distance(ref.mu, ref.sigma, mu, sigma), rel=1e-9)
    assert len(list(cache_dir().glob("*.safetensors"))) == 1
    # A fresh evaluator with the same feature weights reads the cached statistics.
    again = ImageEval(
        evaluator.feature_model, ref, real_images=evaluator.real_images[:300], dataset="synthetic"
    )
    assert again.fid_floor(300) == pytest.approx(floor, rel=1e-12)
    assert evaluator.fid_floor(10_000) is None  # not enough real images: no floor, no crash


def test_shifted_samples_are_farther_than_the_floor(evaluator) -> None:
    real_like = evaluator.fid(_images(300, brightness=200, seed=4))
    shifted = evaluator.fid(_images(300, brightness=90, seed=5))
    assert real_like.floor is not None and shifted.fid > 5 * max(real_like.fid, real_like.floor)


def test_small_n_warns(evaluator) -> None:
    with pytest.warns(UserWarning, match="feature dimension"):
        result = evaluator.fid(_images(6, brightness=200, seed=6), floor=False)
    assert result.warnings and np.isfinite(result.fid)


def test_evaluate_reports_fid_floor_and_kid_as_json(evaluator) -> None:
    report = evaluator.evaluate(_images(200, brightness=200, seed=7))
    json.dumps(report)
    for key in ("fid", "fid_floor", "n", "feature_dim", "kid_mean", "kid_std", "warnings"):
        assert key in report
    assert report["n"] == 200 and report["feature_dim"] == 8 and report["kid_subset_size"] == 200
    no_ref = ImageEval(evaluator.feature_model, evaluator.reference)
    with pytest.raises(ValueError, match="reference_images"):
        no_ref.kid(_images(10, brightness=200, seed=8))


def test_kid_reference_features_are_cached_on_disk(evaluator, monkeypatch) -> None:
    samples = _images(200, brightness=200, seed=9)
    first = evaluator.kid(samples, subset_size=100, n_subsets=10)
    direct = kernel_inception_distance(
        evaluator.features(samples), evaluator.features(evaluator.reference_images),
        subset_size=100, n_subsets=10,
    )  # fmt: skip
    assert first.mean == pytest.approx(direct.mean, rel=1e-6)
    assert len(list(cache_dir().glob("*-features.safetensors"))) == 1
    again = ImageEval(
        evaluator.feature_model, evaluator.reference,
        reference_images=evaluator.reference_images, dataset="synthetic",
    )  # fmt: skip
    sizes: list[int] = []
    extract = ImageEval.features

    def counting(self, images, **kw):
        sizes.append(len(images))
        return extract(self, images, **kw)

    monkeypatch.setattr(ImageEval, "features", counting)
    assert again.kid(samples, subset_size=100, n_subsets=10).mean == pytest.approx(first.mean)
    assert sizes == [200]  # only the samples: the 600 reference images came from the cache


def test_x0_fid_tracker_accumulates_over_batches_and_plots(evaluator, tmp_path, monkeypatch):
    import matplotlib

    from difflab.samplers.base import StepInfo

    def switch(*args, **kwargs):  # the plot must leave a notebook's inline backend alone
        raise AssertionError(f"matplotlib.use{args} called")

    monkeypatch.setattr(matplotlib, "use", switch)

    steps = every_nth_step(10, 4)
    assert steps == [0, 4, 8, 9]
    tracker = X0FidTracker(evaluator, steps)
    for batch in range(2):  # two sampler runs of 60 images each
        for i in range(10):
            x0_hat = torch.from_numpy(_images(60, brightness=60 + 15 * i, seed=batch)).float()
            x = x0_hat / 255 - 0.5
            tracker(StepInfo(i=i, t=999 - 100 * i, x_t=x, x0_hat=x))
    rows = tracker.results()
    assert [r["i"] for r in rows] == steps and all(r["n"] == 120 for r in rows)
    assert rows[0]["t"] == 999.0 and rows[0]["fid"] > rows[-1]["fid"]
    json.dumps(rows)
    png = tracker.plot(tmp_path / "x0_fid.png", rows=rows)
    assert png.stat().st_size > 1000


def _shipped_available() -> bool:
    from difflab.metrics.real_data import load_split

    if not (ASSETS / "fmnist_classifier.json").is_file():
        return False
    try:
        load_split("fashion_mnist", "test")
    except (FileNotFoundError, ValueError):
        return False
    return True


@pytest.mark.skipif(
    not _shipped_available(),
    reason="needs the shipped classifier assets and Fashion-MNIST (DIFFLAB_DATA)",
)
def test_shipped_evaluator_on_real_fashion_mnist(tmp_path, monkeypatch) -> None:
    from difflab.metrics import load_shipped_evaluator

    monkeypatch.setenv("DIFFLAB_CACHE", str(tmp_path))
    evaluator = load_shipped_evaluator()
    assert evaluator.dim == 256 and evaluator.reference.n == 10000
    real = evaluator.real_images[-2000:]  # real training images, not the floor's subset
    noise = np.random.default_rng(0).integers(0, 256, size=(2000, 1, 28, 28), dtype=np.uint8)
    real_report = evaluator.evaluate(real, kid_subsets=20)
    noise_report = evaluator.evaluate(noise, kid=False)
    # Real images sit at the floor (same distribution, same n); noise is far away.
    assert real_report["fid"] < 2 * real_report["fid_floor"]
    assert noise_report["fid"] > 20 * real_report["fid_floor"]
    assert abs(real_report["kid_mean"]) < 5 * real_report["kid_std"] + 1e-3


def test_feature_model_rejects_padded_images(evaluator) -> None:
    pre = {"low": -0.5, "high": 0.5, "channels": 1, "height": 28, "width": 28}
    model = FeatureModel(evaluator.feature_model.module, "pool", "f" * 64, pre, name="tiny")
    assert model.features(_images(2, brightness=200, seed=9)).shape == (2, 8)
    with pytest.raises(ValueError, match="crop any padding"):
        model.features(torch.zeros(2, 1, 32, 32))


def test_concurrent_processes_fill_the_same_cache_entry_safely(tmp_path) -> None:
    """Two processes (e.g. DDP ranks) writing one cache entry each rename a whole file."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from difflab.metrics.reference import cached_features\n"
        "for i in range(1500):  # both processes race to fill entry i, one after another\n"
        "    f = cached_features(f'k{i}', lambda: np.ones((50, 64)), meta={})\n"
        "    assert f.shape == (50, 64) and float(f.sum()) == 50 * 64\n"
    )
    env = {**__import__("os").environ, "DIFFLAB_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
             for _ in range(2)]  # fmt: skip
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()[-2000:]
