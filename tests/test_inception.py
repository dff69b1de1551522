"""pytorch-fid Inception-v3: architecture plumbing with random weights; real weights if given.

The real weights (pt_inception-2015-12-05-6726825d.pth) are never downloaded; set
DIFFLAB_INCEPTION_WEIGHTS to their path to run the test against them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from difflab.metrics.inception import (
    FEATURE_DIM,
    WEIGHTS_FILE_NAME,
    FIDInceptionV3,
    inception_feature_model,
    load_fid_inception,
)


@pytest.fixture(scope="module")
def inception() -> FIDInceptionV3:
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_state_dict_uses_torchvision_names(inception) -> None:
    keys = set(inception.state_dict())
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_4a_3x3.bn.running_var",
        "Mixed_5b.branch_pool.conv.weight",
        "Mixed_6e.branch7x7dbl_5.bn.bias",
        "Mixed_7a.branch7x7x3_4.conv.weight",
        "Mixed_7c.branch3x3dbl_3b.conv.weight",
        "fc.weight",
    ):
        assert key in keys, key
    assert inception.fc.weight.shape == (1008, FEATURE_DIM)
    assert inception.Mixed_5b.branch_pool.conv.weight.shape == (32, 192, 1, 1)
    assert inception.Mixed_7c.branch1x1.conv.weight.shape == (320, 2048, 1, 1)


def test_grayscale_28px_gives_2048_features_via_hook(inception) -> None:
    model = inception_feature_model(inception, "0" * 64)
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    feats = model.features(images)
    assert feats.shape == (2, FEATURE_DIM) and torch.isfinite(feats).all()
    # Grayscale is repeated to 3 channels and resized to 299x299 before the network.
    x = inception.preprocess(torch.rand(1, 1, 28, 28))
    assert x.shape == (1, 3, 299, 299) and torch.equal(x[:, 0], x[:, 2])
    assert -1 <= float(x.min()) and float(x.max()) <= 1


def test_load_checks_sha256_and_reads_tensors_only(inception, tmp_path: Path) -> None:
    import hashlib

    raw = tmp_path / "raw.pth"
    torch.save(inception.state_dict(), raw)
    prefix = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    good = tmp_path / f"pt_inception-test-{prefix}.pth"
    raw.rename(good)
    loaded, digest = load_fid_inception(good)
    assert digest.startswith(prefix)
    torch.testing.assert_close(
        loaded.Mixed_6a.branch3x3.conv.weight, inception.Mixed_6a.branch3x3.conv.weight
    )
    bad = tmp_path / "pt_inception-test-00000000.pth"
    bad.write_bytes(good.read_bytes())
    with pytest.raises(ValueError, match="sha256"):
        load_fid_inception(bad)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_fid_inception(tmp_path / WEIGHTS_FILE_NAME)


def test_load_rejects_other_state_dicts(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="mismatched keys"):
        load_fid_inception(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


_REAL = os.environ.get("DIFFLAB_INCEPTION_WEIGHTS", "")


@pytest.mark.skipif(
    not Path(_REAL).is_file(),
    reason=f"real Inception weights absent: set DIFFLAB_INCEPTION_WEIGHTS to {WEIGHTS_FILE_NAME}",
)
def test_real_weights_load_and_give_sane_features() -> None:
    model, digest = load_fid_inception(_REAL)
    assert digest.startswith("6726825d")
    feats = inception_feature_model(model, digest).features(
        torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    )
    # pool3 features follow a ReLU: non-negative, and not all zero.
    assert feats.shape == (2, FEATURE_DIM) and (feats >= 0).all() and feats.sum() > 0
