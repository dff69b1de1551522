"""`difflab eval` measures every model against its own dataset's feature model and reference,
or refuses in one line: a shapes folder end to end (classifier train -> registry -> a tiny
diffusion model trained on the folder -> eval picks that folder's feature model), real held-out
images near the floor, and the errors for a dataset without a feature model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapes import TRAIN_FLAGS, draw_shapes, write_class_folder

from difflab.cli.main import main
from difflab.config import load_config
from difflab.experiment import build_model
from difflab.io.images import save_samples_npz
from difflab.io.trained import save_trained


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """A shapes class folder, its feature model in the default registry ($DIFFLAB_CACHE), and a
    tiny diffusion model trained on the folder."""
    root = tmp_path_factory.mktemp("eval-datasets")
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFLAB_CACHE", str(root / "cache"))
    try:
        folder = write_class_folder(root / "shapes", *draw_shapes(30))
        train_classifier = ["classifier", "train", "--dataset", str(folder), "--no-progress"]
        assert main([*train_classifier, *TRAIN_FLAGS]) == 0
        train = ["train", "--preset", "tiny", "--data.dataset", str(folder), "--runs-dir",
                 str(root / "runs"), "--train.epochs", "1", "--no-progress"]  # fmt: skip
        assert main(train) == 0
        yield folder, next((root / "runs").glob("0*")), root
    finally:
        mp.undo()


@pytest.fixture
def cache(shapes_run, monkeypatch):
    monkeypatch.setenv("DIFFLAB_CACHE", str(shapes_run[2] / "cache"))
    return shapes_run


def test_a_run_on_a_folder_is_measured_with_that_folders_feature_model(cache, capsys):
    folder, run, _ = cache
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "40", "--steps", "2", "--no-kid", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["feature_model"].startswith("shapes-")  # never the Fashion-MNIST classifier
    assert result["reference"]["split"] == "test" and result["fid_floor"] is not None


def test_real_held_out_images_score_near_the_floor_through_the_cli(cache, tmp_path, capsys):
    folder, _, _ = cache
    fresh, _ = draw_shapes(25, seed=1)
    save_samples_npz(tmp_path / "fresh.npz", fresh)
    noise = np.random.default_rng(2).integers(0, 256, fresh.shape, dtype=np.uint8)
    save_samples_npz(tmp_path / "noise.npz", noise)
    capsys.readouterr()
    results = []
    for name in ("fresh", "noise"):
        args = ["eval", str(tmp_path / f"{name}.npz"), "--dataset", str(folder), "--no-kid"]
        assert main([*args, "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    fresh_result, noise_result = results
    assert fresh_result["fid"] < 3 * fresh_result["fid_floor"] + 1.0
    assert noise_result["fid"] > 5 * fresh_result["fid"]


def test_images_without_a_dataset_are_refused_naming_the_flag(tmp_path, capsys):
    save_samples_npz(tmp_path / "x.npz", np.zeros((4, 1, 16, 16), np.uint8))
    assert main(["eval", str(tmp_path / "x.npz")]) == 2
    assert "pass --dataset NAME|FOLDER" in capsys.readouterr().err


def test_a_model_of_a_dataset_without_a_feature_model_is_refused(tmp_path, monkeypatch, capsys):
    # MNIST is not on this machine: the refusal must come before any data is read or fetched
    monkeypatch.setenv("DIFFLAB_CACHE", str(tmp_path / "cache"))
    config = load_config(preset="tiny", overrides={"data.dataset": "mnist"})
    save_trained(tmp_path / "model", build_model(config, (1, 28, 28)), config, (1, 28, 28))
    assert main(["eval", str(tmp_path / "model"), "--n", "8"]) == 2
    err = capsys.readouterr().err
    assert "no feature model for mnist: run `difflab classifier train --dataset mnist`" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_mismatched_image_size_is_refused(cache, tmp_path, capsys):
    folder, _, _ = cache
    save_samples_npz(tmp_path / "big.npz", np.zeros((4, 1, 28, 28), np.uint8))
    assert main(["eval", str(tmp_path / "big.npz"), "--dataset", str(folder)]) == 2
    assert "takes 1-channel 16x16 images" in capsys.readouterr().err


def test_a_short_conditional_training_gives_class_accuracy_far_above_chance(cache, capsys):
    """160 steps of the tiny UNet on the shapes folder (10 classes: chance is 0.1). Measured
    here: class accuracy 0.09 unguided (w 0), 0.24 at w 1, 0.61 at w 6; FID 2.5 -> 1.3."""
    folder, _, root = cache
    runs = root / "cond-runs"
    train = ["train", "--preset", "tiny", "--data.dataset", str(folder), "--model.num-classes",
             "auto", "--train.epochs", "20", "--train.batch-size", "32", "--train.sample-every",
             "0", "--runs-dir", str(runs), "--no-progress"]  # fmt: skip
    assert main(train) == 0
    run = next(runs.glob("0*"))
    capsys.readouterr()
    args = ["eval", str(run), "--n", "100", "--steps", "10", "--no-kid", "--json"]
    assert main([*args, "--guidance-sweep", "0,6", "--out", str(root / "sweep")]) == 0
    unguided, guided = json.loads(capsys.readouterr().out)
    assert guided["class_accuracy"] > 0.3 > unguided["class_accuracy"]  # 3x chance with w = 6
    assert guided["nfe"] == 2 * unguided["nfe"] == 20  # guidance pays two evaluations a step
    assert (root / "sweep" / "guidance.png").is_file()
    assert main([*args, "--guidance", "6"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["class_accuracy"] == guided["class_accuracy"]  # same seeds, same answer
    rows = result["per_class"]
    assert [r["n"] for r in rows] == [10] * 10  # balanced classes: 10 images each
    assert all(r["fid_floor"] is not None and r["reference_n"] == 5 for r in rows)
