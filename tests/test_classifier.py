"""The feature classifier, its augmentations, a tiny training run, and the shipped weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from difflab.cli.main import main
from difflab.metrics.real_data import load_split
from difflab.models.classifier import FashionClassifier
from difflab.training.fit_classifier import (
    ClassifierTrainConfig,
    evaluate_accuracy,
    fit_classifier,
    random_crop,
    random_erase,
    random_flip,
    save_classifier_assets,
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


@needs_data
def test_tiny_training_run_learns_and_writes_verifiable_assets(tmp_path: Path) -> None:
    config = ClassifierTrainConfig(
        epochs=3, batch_size=64, limit=2048, test_limit=1000, widths=(8, 16), lr=1e-2, erase_p=0.0
    )
    model, record = fit_classifier(config, progress=False)
    assert record["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    meta = save_classifier_assets(model, record, tmp_path, progress=False)
    assert meta["feature_dim"] == 16 and meta["reference_stats"]["n"] == 1000
    assert len(meta["data_sha256"]["test"]) == 64
    from difflab.metrics.shipped import load_feature_model

    feature_model = load_feature_model(tmp_path)
    x, y = load_split("fashion_mnist", "test")
    x_t = torch.from_numpy(x[:500]).float() / 255 - 0.5
    acc = evaluate_accuracy(feature_model.module, x_t, torch.from_numpy(y[:500]))
    assert acc > 0.5
    (tmp_path / meta["weights_file"]).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        load_feature_model(tmp_path)


def test_cli_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["classifier", "train", "--help"])
    assert exit_info.value.code == 0
    assert "--epochs" in capsys.readouterr().out


@pytest.mark.skipif(
    not (ASSETS / "fmnist_classifier.json").is_file(),
    reason="shipped classifier not built yet (difflab classifier train --out src/difflab/assets)",
)
@needs_data
def test_shipped_classifier_accuracy_is_what_its_json_claims() -> None:
    from difflab.metrics.shipped import load_classifier_meta, load_feature_model

    meta = load_classifier_meta(ASSETS)
    assert meta["test_accuracy"] >= 0.93
    model = load_feature_model(ASSETS).module
    x, y = load_split("fashion_mnist", "test")
    # Every 5th test image: 2000 images, enough to pin accuracy to about +-0.6%.
    x_t = torch.from_numpy(x[::5]).float() / 255 - 0.5
    acc = evaluate_accuracy(model, x_t, torch.from_numpy(y[::5]))
    assert abs(acc - meta["test_accuracy"]) < 0.02
    assert os.path.getsize(ASSETS / meta["weights_file"]) <= 10 * 2**20
