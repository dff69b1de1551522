"""Sample from a trained model and measure it: the library beneath `difflab eval` and quickstart.

`measure`: FID/KID with the real-data floor, FID of x0_hat across steps, samplers x steps
sweeps, the dataset's own evaluator. `classes`: what judges a class-conditional model (class
accuracy, per-class FID with per-class floors) and the guidance trade-off curve.
"""

from difflab.evaluation.classes import (
    evaluate_model,
    guidance_sweep,
    measure_conditional,
    proportional_labels,
)
from difflab.evaluation.measure import (
    dataset_evaluator,
    measure,
    sample_and_measure,
    sweep_samplers,
    trained_dataset,
    write_sweep,
    x0_fid_across_steps,
)

__all__ = [
    "dataset_evaluator",
    "evaluate_model",
    "guidance_sweep",
    "measure",
    "measure_conditional",
    "proportional_labels",
    "sample_and_measure",
    "sweep_samplers",
    "trained_dataset",
    "write_sweep",
    "x0_fid_across_steps",
]
