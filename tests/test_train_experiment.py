"""`train_experiment`, the library call beneath `difflab train`: extra callbacks and what the
run folder records."""

import json

import numpy as np
from PIL import Image

from difflab.config import load_config
from difflab.experiment import train_experiment
from difflab.training.callback import Callback


class CountSteps(Callback):
    def __init__(self):
        self.steps = 0

    def after_step(self, learn):
        self.steps += 1


def test_extra_callbacks_see_every_step_and_the_run_records_the_resolved_precision(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(24):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"{k}.png")
    config = load_config(
        preset="tiny",
        overrides={"data.dataset": str(folder), "train.batch_size": "8", "train.sample_every": "0",
                   "runs_dir": str(tmp_path / "runs")},
    )  # fmt: skip
    assert config.train.mixed_precision == "auto"
    counter = CountSteps()
    summary = train_experiment(config, progress=False, callbacks=[counter])
    assert summary["finished"] and summary["steps"] == 3  # 24 images / 8 per batch
    assert counter.steps == 3
    recorded = json.loads((tmp_path / "runs").glob("*/config.json").__next__().read_text())
    assert recorded["train"]["mixed_precision"] in ("no", "bf16")  # never "auto"
