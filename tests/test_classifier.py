"""The feature classifier, its augmentations, a tiny Fashion-MNIST run, and the shipped weights
(directly and as the registry's built-in entry)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from difflab.cli.main import main
from difflab.config.classifier import ClassifierConfig
from difflab.metrics.real_data import load_split
from difflab.models.classifier import FashionClassifier, ImageClassifier
from difflab.training.fit_classifier import (
    evaluate_accuracy,
    random_crop,
    random_erase,
    random_flip,
    train_feature_model,
)

ASSETS = Path(__file__).resolve().parents[1] / "src" / "difflab" / "assets"


def _data_available() -> bool:
    try:
        load_split("fashion_mnist", "test")
    except (FileNotFoundError, ValueError):
        return False
    return True


needs_data = pytest.mark.skipif(
    not _data_available(), reason="Fashion-MNIST not found: set DIFFLAB_DATA"
)


def test_model_shapes_config_round_trip_and_size() -> None:
    model = FashionClassifier()
    x = torch.zeros(3, 1, 28, 28)
    assert model(x).shape == (3, 10) and model.features(x).shape == (3, model.feature_dim)
    assert model.feature_dim == 256
    clone = FashionClassifier.from_config(json.loads(json.dumps(model.config())))
    assert clone.config() == model.config()
    n_bytes = sum(p.numel() * 4 for p in model.state_dict().values())
    assert n_bytes <= 10 * 2**20
    with pytest.raises(ValueError, match="unknown classifier config"):
        FashionClassifier.from_config({"depth": 3})


def test_random_crop_shifts_content_within_padding() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.full((64, 1, 28, 28), -0.5)
    x[:, :, 14, 14] = 0.5  # one bright pixel: after the crop it moves by at most pad
    out = random_crop(x, 2, fill=-0.5, generator=g)
    assert out.shape == x.shape
    pos = (out[:, 0] == 0.5).flatten(1).float().argmax(1)
    rows, cols = pos // 28, pos % 28
    assert (rows - 14).abs().max() <= 2 and (cols - 14).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5  # offsets differ per image


def test_flip_and_erase() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.linspace(-0.5, 0.5, 28).expand(200, 1, 28, 28).contiguous()
    flipped = random_flip(x, generator=g)
    is_flipped = (flipped == x.flip(3)).flatten(1).all(1)
    assert (
        60 < int(is_flipped.sum()) < 140 and ((flipped == x).flatten(1).all(1) | is_flipped).all()
    )
    erased = random_erase(x, 0.5, low=-0.5, high=0.5, generator=g)
    changed = (erased != x).flatten(1).any(1)
    assert 60 < int(changed.sum()) < 140 and erased.min() >= -0.5 and erased.max() <= 0.5


def test_any_channels_and_size_and_stride_two_stem() -> None:
    model = ImageClassifier(in_channels=3, n_classes=4, widths=(8, 16), stem_stride=2)
    for h, w in ((16, 16), (40, 24)):
        assert model(torch.zeros(2, 3, h, w)).shape == (2, 4)
    clone = ImageClassifier.from_config(json.loads(json.dumps(model.config())))
    assert clone.config() == model.config() and clone.stem[0].stride == (2, 2)
    assert "stem_stride" not in FashionClassifier().config()  # the shipped JSON stays valid


@needs_data
def test_tiny_training_run_learns_and_writes_verifiable_assets(tmp_path: Path) -> None:
    from difflab.metrics.feature_models import read_entry

    config = ClassifierConfig(
        epochs=3, batch_size=64, limit=2048, test_limit=1000, widths=(8, 16), lr=1e-2
    )
    card = train_feature_model(config, out=tmp_path, progress=False)
    assert card["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert card["feature_dim"] == 16 and card["reference_stats"]["n"] == 1000
    assert card["identity"]["name"] == "fashion_mnist" and len(card["identity"]["sha256"]) == 64
    entry = read_entry(tmp_path)
    feature_model = entry.load_model()
    x, y = load_split("fashion_mnist", "test")
    x_t = torch.from_numpy(x[:500]).float() / 255 - 0.5
    acc = evaluate_accuracy(feature_model.module, x_t, torch.from_numpy(y[:500]))
    assert acc > 0.5
    (tmp_path / card["weights_file"]).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        entry.load_model()


def test_config_flags_are_generated_and_validated(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["classifier", "train", "--widths", "8,16", "--epochs", "2", "--dry-run"])
    assert exit_info.value.code == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["widths"] == [8, 16] and resolved["epochs"] == 2
    assert main(["classifier", "train", "--stem-stride", "3"]) == 2
    assert "--stem-stride" in capsys.readouterr().err


def test_cli_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["classifier", "train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"--{flag}" in out for flag in ("epochs", "widths", "dataset", "registry"))


needs_assets = pytest.mark.skipif(
    not (ASSETS / "fmnist_classifier.json").is_file(),
    reason="shipped classifier not built yet (difflab classifier train --out src/difflab/assets)",
)


@pytest.fixture(scope="module")
def shipped_and_test_split():
    """The shipped classifier (sha256-verified), its JSON, and the full 10,000-image test split."""
    from difflab.metrics.shipped import load_classifier_meta, load_feature_model

    images, labels = load_split("fashion_mnist", "test")
    return load_feature_model(ASSETS), load_classifier_meta(ASSETS), images, labels


@needs_assets
@needs_data
def test_shipped_classifier_accuracy_is_what_its_json_claims(shipped_and_test_split) -> None:
    feature_model, meta, images, labels = shipped_and_test_split
    # The JSON's figure is evaluate_accuracy on the whole test split in float32 (fit_classifier),
    # so recounting it here, with a plain loop instead of that function, must give it exactly.
    assert meta["n_test"] == len(images) == 10_000 and meta["test_accuracy"] >= 0.93
    low, high = meta["preprocessing"]["low"], meta["preprocessing"]["high"]
    model, correct = feature_model.module.eval(), 0
    with torch.no_grad():
        for start in range(0, len(images), 2000):
            x = torch.from_numpy(images[start : start + 2000]).float() / 255 * (high - low) + low
            predicted = model(x).argmax(1).numpy()
            correct += int((predicted == labels[start : start + 2000]).sum())
    assert abs(correct / len(images) - meta["test_accuracy"]) <= 1e-3
    assert os.path.getsize(ASSETS / meta["weights_file"]) <= 10 * 2**20


@needs_assets
@needs_data
def test_shipped_reference_statistics_are_those_of_the_test_split(shipped_and_test_split) -> None:
    from difflab.metrics.reference import load_reference_stats

    feature_model, meta, images, _ = shipped_and_test_split
    info = meta["reference_stats"]
    reference = load_reference_stats(ASSETS / info["file"], sha256=info["sha256"])
    assert reference.n == info["n"] == len(images)
    # The package's feature path, then an independent mean and covariance (numpy, float64).
    features = feature_model.features(images).numpy().astype(np.float64)
    assert features.shape == (10_000, meta["feature_dim"])
    mu, sigma = features.mean(axis=0), np.cov(features, rowvar=False)
    np.testing.assert_allclose(reference.mu, mu, rtol=0, atol=1e-5)
    np.testing.assert_allclose(reference.sigma, sigma, rtol=0, atol=1e-7)
    assert np.abs(reference.sigma).max() > 1e-2  # the tolerance is tight relative to the entries


@needs_assets
@needs_data
def test_builtin_entry_through_the_registry_gives_the_shipped_numbers(tmp_path, monkeypatch):
    from difflab.metrics.feature_models import (
        BUILTIN_ID,
        find_feature_model,
        load_feature_evaluator,
    )
    from difflab.metrics.reference import load_reference_stats
    from difflab.metrics.shipped import load_shipped_evaluator

    monkeypatch.setenv("DIFFLAB_CACHE", str(tmp_path))
    entry = find_feature_model("fashion_mnist", image_shape=(1, 28, 28), registry=tmp_path)
    assert entry.id == BUILTIN_ID and entry.builtin
    generic = load_feature_evaluator("fashion_mnist", image_shape=(1, 28, 28), registry=tmp_path)
    info = entry.card["reference_stats"]
    shipped_stats = load_reference_stats(ASSETS / info["file"], sha256=info["sha256"])
    np.testing.assert_array_equal(generic.reference.mu, shipped_stats.mu)
    np.testing.assert_array_equal(generic.reference.sigma, shipped_stats.sigma)
    images = load_split("fashion_mnist", "test")[0][:600]
    shipped = load_shipped_evaluator(with_real_images=False)
    assert generic.fid(images, floor=False).fid == shipped.fid(images, floor=False).fid
    assert generic.feature_model.weights_sha256 == entry.card["weights_sha256"]
