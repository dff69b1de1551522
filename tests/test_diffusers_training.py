"""`--model.preset diffusers`: a diffusers UNet2DModel trains and samples through difflab's own path."""

import math

import numpy as np
import pytest
from PIL import Image

from difflab.cli.main import main
from difflab.config import load_config
from difflab.experiment import start_run, train_experiment


def image_folder(folder, n=32, size=16):
    """n random grey PNGs: a folder dataset has no validation split, which keeps this cheap."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{k}.png")
    return folder


def test_diffusers_preset_trains_then_samples_from_the_cli(tmp_path):
    pytest.importorskip("diffusers", reason="diffusers is a test dependency (pip install .[dev])")
    overrides = {
        "model.preset": "diffusers",
        "data.dataset": str(image_folder(tmp_path / "images")),
        "data.limit": "32",
        "train.batch_size": "8",  # 32 images / 8 per batch: 4 optimiser steps in one epoch
        "train.epochs": "1",
        "train.mixed_precision": "no",
        "sample.n": "4",  # the per-epoch sample grid goes through the same model too
        "sample.steps": "2",
        "runs_dir": str(tmp_path / "runs"),
    }
    config = load_config(overrides=overrides)
    run_dir = start_run(config)
    summary = train_experiment(config, run_dir, progress=False)
    assert summary["steps"] == 4 and summary["finished"]
    assert math.isfinite(summary["metrics"]["epoch/train_loss"])
    assert (run_dir / "samples" / "epoch_001.png").is_file()
    assert '"kind": "diffusers.UNet2DModel"' in (run_dir / "model.json").read_text()
    out = tmp_path / "samples"
    args = ["sample", str(run_dir), "--sampler", "ddim", "--steps", "3", "--n", "3"]
    assert main([*args, "--no-bf16", "--out", str(out)]) == 0
    images = np.load(out.with_suffix(".npz"), allow_pickle=False)["images"]
    assert images.shape == (3, 1, 16, 16) and images.dtype == np.uint8
    assert images.std() > 0  # not a constant image: the network's output reached the pixels
