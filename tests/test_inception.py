"""pytorch-fid Inception-v3: architecture plumbing with random weights, `difflab eval
--inception-weights` end to end on random weights in pytorch-fid's file format, and the real
weights if given.

The real weights (pt_inception-2015-12-05-6726825d.pth) are never downloaded; set
DIFFLAB_INCEPTION_WEIGHTS to their path to run the test against them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_classifier import needs_data
from torch import nn

from difflab.cli.main import main
from difflab.io.images import save_samples_npz
from difflab.metrics.fid import frechet_distance
from difflab.metrics.inception import (
    FEATURE_DIM,
    WEIGHTS_FILE_NAME,
    FIDInceptionV3,
    inception_feature_model,
    load_fid_inception,
)
from difflab.metrics.real_data import load_split


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


# --- end to end: `difflab eval --inception-weights` on random weights in pytorch-fid's format ---


def _named_by_sha256(raw: Path, stem: str = "pt_inception-random") -> Path:
    """Rename `raw` to STEM-<first 8 hex of its sha256>.pth, as pytorch-fid names its file."""
    prefix = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    return raw.rename(raw.with_name(f"{stem}-{prefix}.pth"))


@pytest.fixture(scope="module")
def random_weights_file(tmp_path_factory) -> Path:
    """Random weights of the architecture saved as pytorch-fid's file is: a torch state dict."""
    torch.manual_seed(1)
    model = FIDInceptionV3()
    # He init keeps activations O(1) through the 94 conv+BN layers; PyTorch's default init
    # shrinks the pool3 features to ~1e-8, which would make any FID trivially ~0.
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    raw = tmp_path_factory.mktemp("inception") / "raw.pth"
    torch.save(model.state_dict(), raw)
    return _named_by_sha256(raw)


def _few_real_images(monkeypatch, n: int) -> None:
    """Real Fashion-MNIST, first n of each split: Inception at 299x299 on CPU is slow."""
    import difflab.metrics.real_data as real_data

    full = real_data.load_split

    def first_n(dataset: str, split: str, root: str | None = None):
        images, labels = full(dataset, split, root)
        return images[:n], labels[:n]

    monkeypatch.setattr(real_data, "load_split", first_n)


def _pool3_statistics(model: FIDInceptionV3, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent path: the network's own forward on [0, 1] images, numpy mean/covariance."""
    with torch.no_grad():
        f = model(torch.from_numpy(pixels).float() / 255).double().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False)


@needs_data
def test_eval_cli_with_inception_weights_gives_the_fid_of_pool3_features(
    random_weights_file, tmp_path, monkeypatch, capsys
) -> None:
    _few_real_images(monkeypatch, 16)
    samples = np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28), dtype=np.uint8)
    npz = save_samples_npz(tmp_path / "samples.npz", samples)
    args = ["eval", str(npz), "--inception-weights", str(random_weights_file), "--json"]
    with pytest.warns(UserWarning, match="singular"):  # n=8 << 2048: said, not hidden
        assert main([*args, "--no-kid"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["feature_model"] == "inception_v3_pytorch_fid"
    assert result["feature_dim"] == FEATURE_DIM and result["n"] == 8
    assert result["reference"] == {"dataset": "fashion_mnist", "split": "test", "n": 16}
    sha = hashlib.sha256(random_weights_file.read_bytes()).hexdigest()
    assert result["feature_weights_sha256"] == sha
    assert math.isfinite(result["fid"]) and math.isfinite(result["fid_floor"])
    model, _ = load_fid_inception(random_weights_file)
    reference_images = load_split("fashion_mnist", "test")[0][:16]  # not monkeypatched here
    mu_r, sigma_r = _pool3_statistics(model, reference_images)
    mu_s, sigma_s = _pool3_statistics(model, samples)
    assert result["fid"] == pytest.approx(frechet_distance(mu_r, sigma_r, mu_s, sigma_s), rel=1e-4)
    assert result["fid"] > result["fid_floor"] > 0  # noise is farther than real training images


def test_eval_cli_refuses_weights_whose_name_does_not_match_their_sha256(
    random_weights_file, tmp_path, capsys
) -> None:
    digest = hashlib.sha256(random_weights_file.read_bytes()).hexdigest()
    wrong = "00000000" if not digest.startswith("00000000") else "11111111"
    renamed = tmp_path / f"pt_inception-2015-12-05-{wrong}.pth"
    renamed.symlink_to(random_weights_file)
    npz = save_samples_npz(tmp_path / "s.npz", np.zeros((2, 1, 28, 28), np.uint8))
    assert main(["eval", str(npz), "--inception-weights", str(renamed), "--json"]) == 2
    err = capsys.readouterr().err
    assert f"sha256 {digest} does not start with {wrong}" in err and "Traceback" not in err


def test_weights_that_would_run_code_are_refused_not_unpickled(tmp_path) -> None:
    marker = tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    raw = tmp_path / "raw.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": RunsCode()}, raw)
    with pytest.raises(ValueError, match="refused to unpickle"):
        load_fid_inception(_named_by_sha256(raw))  # the sha256 check passes: the name is right
    assert not marker.exists()
