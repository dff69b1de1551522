"""From a RunConfig to a trained, sampled and measured model: the library beneath the CLI.

`build` turns config names into objects (data, network, objective, a Learner with the recipe's
callbacks); `train` runs a training (run folder, trackers, model file); `quickstart` is the main
job, train -> sample -> evaluate. `difflab train`, `difflab quickstart`, the benchmarks and the
notebooks all call these, never `difflab.cli`.
"""

from difflab.experiment.build import build_data, build_learner, build_model, build_objective
from difflab.experiment.quickstart import quickstart
from difflab.experiment.train import (
    find_learning_rate,
    nonfinite_message,
    start_run,
    start_run_once,
    train_experiment,
)

__all__ = [
    "build_data",
    "build_learner",
    "build_model",
    "build_objective",
    "find_learning_rate",
    "nonfinite_message",
    "quickstart",
    "start_run",
    "start_run_once",
    "train_experiment",
]
