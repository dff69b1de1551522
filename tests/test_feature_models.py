"""Feature models end to end on procedurally drawn shapes: `classifier train` on a class folder
-> registry -> `classifier ls` -> `load_feature_evaluator`; the one-line errors; any channels
and sizes; the stratified hold-out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapes import N_CLASSES, TRAIN_FLAGS, draw_shapes, write_class_folder

from difflab.cli.main import main
from difflab.config.classifier import ClassifierConfig
from difflab.metrics.feature_models import (
    FeatureModelError,
    find_feature_model,
    load_feature_evaluator,
)
from difflab.metrics.real_data import LabelledData, stratified_holdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A grayscale 16x16 shapes folder, trained once into a registry through the CLI."""
    root = tmp_path_factory.mktemp("features")
    folder = write_class_folder(root / "shapes", *draw_shapes(30))
    registry = root / "registry"
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFLAB_CACHE", str(root / "cache"))
    args = ["classifier", "train", "--dataset", str(folder), "--registry", str(registry)]
    try:
        assert main([*args, *TRAIN_FLAGS, "--no-progress"]) == 0
    finally:
        mp.undo()
    return folder, registry


def test_train_registers_a_card_that_ls_shows(trained, capsys) -> None:
    folder, registry = trained
    assert main(["classifier", "ls", "--json", "--registry", str(registry)]) == 0
    cards = {c["id"]: c for c in json.loads(capsys.readouterr().out)}
    (mid,) = [i for i in cards if i.startswith("shapes-")]
    card = cards[mid]
    assert card["image_shape"] == [1, 16, 16] and card["classes"][0] == "class_0"
    assert card["test_split"] == "holdout-1/6" and card["n_test"] == 50 and card["n_train"] == 250
    assert card["test_accuracy"] >= 0.8  # 10 classes: chance is 0.1
    assert card["feature_dim"] == 16 and card["train_config"]["widths"] == [8, 16]
    assert card["real_floor"]["n"] == 250 and card["real_floor"]["fid"] > 0
    assert main(["classifier", "ls", "--registry", str(registry)]) == 0
    assert mid in capsys.readouterr().err


def test_evaluator_scores_fresh_real_images_near_the_floor(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFLAB_CACHE", str(tmp_path))
    folder, registry = trained
    evaluator = load_feature_evaluator(str(folder), image_shape=(1, 16, 16), registry=registry)
    # The reference is the held-out sixth: recompute its statistics independently (numpy).
    held_out = stratified_holdout(np.repeat(np.arange(N_CLASSES), 30))
    images, _ = draw_shapes(30)
    features = evaluator.features(images[held_out]).double().numpy()
    np.testing.assert_allclose(evaluator.reference.mu, features.mean(0), atol=1e-5)
    np.testing.assert_allclose(evaluator.reference.sigma, np.cov(features, rowvar=False), atol=1e-5)
    # New draws of the same classes score near the floor at the same n; noise does not.
    fresh, _ = draw_shapes(25, seed=1)
    result = evaluator.fid(fresh)
    assert result.floor is not None and result.fid < 3 * result.floor + 1.0
    noise = np.random.default_rng(2).integers(0, 256, fresh.shape, dtype=np.uint8)
    assert evaluator.fid(noise, floor=False).fid > 5 * result.fid
    report = evaluator.evaluate(fresh, kid=False)
    assert report["feature_model"].startswith("shapes-")


def test_shape_and_identity_mismatches_and_missing_models_raise_one_line(trained, tmp_path):
    folder, registry = trained
    for shape, what in (((3, 16, 16), "1-channel"), ((1, 32, 32), "16x16")):
        with pytest.raises(FeatureModelError, match=what) as info:
            find_feature_model(str(folder), image_shape=shape, registry=registry)
        assert "\n" not in str(info.value)
    changed = write_class_folder(tmp_path / "shapes", *draw_shapes(30, seed=5))
    with pytest.raises(FeatureModelError, match="other data"):
        find_feature_model(str(changed), image_shape=(1, 16, 16), registry=registry)
    other = write_class_folder(tmp_path / "circles", *draw_shapes(12))
    with pytest.raises(FeatureModelError, match="no feature model for circles: run `difflab"):
        find_feature_model(str(other), image_shape=(1, 16, 16), registry=registry)
    with pytest.raises(FeatureModelError, match="--dataset mnist`"):  # never fetches mnist
        find_feature_model("mnist", image_shape=(1, 28, 28), registry=registry)


def test_unlabelled_folder_is_refused_in_one_line(tmp_path, capsys) -> None:
    from PIL import Image

    folder = tmp_path / "flat"
    folder.mkdir()
    for i, image in enumerate(draw_shapes(1)[0]):
        Image.fromarray(image[0]).save(folder / f"{i}.png")
    assert main(["classifier", "train", "--dataset", str(folder), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unlabelled" in err and "fashion_mnist" in err and "\n" not in err


def test_rgb_arrays_of_another_size_train_and_register(tmp_path, monkeypatch) -> None:
    import torch

    from difflab.metrics.feature_models import list_feature_models, save_feature_model
    from difflab.training.fit_classifier import fit_classifier
    from difflab.training.learner import Learner

    fits = []  # the one training loop: the Learner's
    real_fit = Learner.fit
    monkeypatch.setattr(
        Learner, "fit", lambda self, n, **kw: fits.append(n) or real_fit(self, n, **kw)
    )
    threads = torch.get_num_threads()

    images, labels = draw_shapes(30, size=20, channels=3)
    held_out = stratified_holdout(labels)
    identity = {"name": "rgb_shapes", "kind": "arrays", "sha256": "ab" * 32}
    data = LabelledData("rgb_shapes", [f"c{c}" for c in range(N_CLASSES)], images[~held_out],
                        labels[~held_out], images[held_out], labels[held_out], identity, "holdout")  # fmt: skip
    config = ClassifierConfig(
        dataset="rgb_shapes", epochs=8, batch_size=32, widths=(8, 16), lr=2e-2, flip=False
    )
    model, record, _ = fit_classifier(config, data=data, progress=False)
    assert model.config()["in_channels"] == 3 and record["test_accuracy"] >= 0.7
    assert fits == [8] and torch.get_num_threads() == threads  # --threads only for the fit
    card = save_feature_model(model, record, data, registry=tmp_path)
    assert card["image_shape"] == [3, 20, 20] and card["id"] == "rgb_shapes-" + "ab" * 6
    assert [e.id for e in list_feature_models(tmp_path)][-1] == card["id"]


def test_stratified_holdout_takes_a_sixth_of_each_class_with_a_fixed_seed() -> None:
    labels = np.repeat([0, 1, 2], [60, 13, 1])
    mask = stratified_holdout(labels)
    assert [int(mask[labels == c].sum()) for c in range(3)] == [10, 2, 0]
    np.testing.assert_array_equal(mask, stratified_holdout(labels))
