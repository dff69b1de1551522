"""Feature extraction by forward hook, input scaling, and feature statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difflab.metrics.features import extract_features, feature_statistics, to_model_input
from difflab.models.classifier import FashionClassifier


@pytest.fixture(scope="module")
def model() -> FashionClassifier:
    torch.manual_seed(0)
    return FashionClassifier(widths=(4, 8))


def test_hook_features_equal_direct_features_and_batching_does_not_matter(model) -> None:
    images = torch.randint(0, 256, (37, 1, 28, 28), dtype=torch.uint8)
    model.eval()
    with torch.no_grad():
        direct = model.features(images.float() / 255 - 0.5)
    f_small = extract_features(model, images, layer="pool", batch_size=10)
    f_big = extract_features(model, images.numpy(), layer="pool", batch_size=100)
    assert f_small.shape == (37, 8) and f_small.dtype == torch.float32
    torch.testing.assert_close(f_small, direct, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f_small, f_big, rtol=1e-5, atol=1e-5)


def test_extraction_restores_training_mode_and_needs_no_grad(model) -> None:
    model.train()
    feats = extract_features(model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    assert model.training and not feats.requires_grad
    model.eval()


def test_uint8_and_float_inputs_agree(model) -> None:
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    as_float = images.float() * (1.0 / 255) - 0.5
    torch.testing.assert_close(
        extract_features(model, images), extract_features(model, as_float), rtol=1e-5, atol=1e-5
    )


def test_float_input_is_clamped_and_bad_inputs_raise(model) -> None:
    x = torch.tensor([-3.0, 0.2, 9.0]).reshape(1, 1, 1, 3)
    assert to_model_input(x, low=-0.5, high=0.5).flatten().tolist() == pytest.approx(
        [-0.5, 0.2, 0.5]
    )
    with pytest.raises(ValueError, match="no layer"):
        extract_features(model, torch.zeros(2, 1, 28, 28), layer="nope")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        extract_features(model, torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="uint8 or float"):
        to_model_input(torch.zeros(1, 1, 2, 2, dtype=torch.int32), low=0, high=1)


def test_feature_statistics_match_numpy() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 6)).astype(np.float32)
    mu, sigma = feature_statistics(f)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f.astype(np.float64), rowvar=False), rtol=1e-10)
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(f[:1])


def test_metrics_import_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, difflab.metrics; "
        "bad = [m for m in ('difflab.training', 'difflab.samplers', 'difflab.tracking', 'scipy', "
        "'matplotlib') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
