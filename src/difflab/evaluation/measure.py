"""Sample from a trained model and measure: FID/KID with the real-data floor, FID of the
predicted x0 across steps, and a samplers x steps sweep (a table and two plots).

The library beneath `difflab eval` and quickstart; a benchmark or a notebook calls the same
functions. The evaluator (an `ImageEval` from difflab.metrics) is given, never chosen here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from difflab.config import SampleConfig
from difflab.data.scaling import crop_padding, to_uint8
from difflab.generation import generate_images, network_evaluations, sampling_plan
from difflab.io.trained import TrainedModel
from difflab.samplers import sampler_spec

log = logging.getLogger("difflab")

SWEEP_COLUMNS = ("sampler", "eta", "steps", "nfe", "fid", "fid_floor", "n", "sampling_seconds")


def dataset_evaluator(
    dataset: str,
    image_shape: tuple[int, ...],
    *,
    data_root: str | None = None,
    feature_model: str | None = None,
):
    """FID/KID for images of `dataset` (C, H, W as the dataset holds them, padding cropped) in
    the feature space of that dataset's own classifier, against its own test statistics.

    Never another dataset's model: a missing or mismatched one raises FeatureModelError (a
    ValueError) whose one line names the fix (`difflab classifier train --dataset ...`).
    """
    from difflab.metrics.feature_models import load_feature_evaluator

    return load_feature_evaluator(
        dataset, image_shape=tuple(image_shape), data_root=data_root, model_id=feature_model
    )


def trained_dataset(trained: TrainedModel) -> tuple[str, str | None, tuple[int, int, int]]:
    """(dataset, data root, image shape at the dataset's size) that a model was trained on."""
    data = trained.meta.get("run_config", {}).get("data", {})
    return data.get("dataset", "fashion_mnist"), data.get("root"), trained.output_shape


def measure(evaluator: Any, pixels: Any, *, kid: bool) -> dict[str, Any]:
    """FID (with its floor) and optionally KID of uint8 images (N, C, H, W); warnings logged."""
    report = evaluator.evaluate(pixels, kid=kid)
    if "kid_mean" in report:
        report["kid"] = report.pop("kid_mean")
    for warning in report.get("warnings", []):
        log.warning("%s", warning)
    return report


def sample_and_measure(
    trained: TrainedModel,
    sample: SampleConfig,
    evaluator: Any,
    *,
    kid: bool,
    on_step: Callable | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Draw sample.n images (seeds sample.seed + k), measure them, and say how they were drawn."""
    start = time.perf_counter()
    images = generate_images(trained, sample, on_step=on_step, progress=progress)
    seconds = time.perf_counter() - start
    result = measure(evaluator, to_uint8(images, trained.low, trained.high), kid=kid)
    spec = sampler_spec(sample.sampler)
    result.update(
        sampler=sample.sampler,
        steps=sample.steps,
        eta=spec.settings(sample).get("eta"),  # None where the sampler has no eta
        nfe=network_evaluations(trained, sample),
        sampling_seconds=round(seconds, 2),
        **guidance_record(sample),
    )
    return result


def guidance_record(sample: SampleConfig) -> dict[str, Any]:
    """The guidance settings that shaped a result, where they differ from none."""
    record: dict[str, Any] = {}
    if sample.autoguidance != 1.0:
        record["autoguidance"] = sample.autoguidance
    if sample.guide_interval:
        record["guide_interval"] = sample.guide_interval
    return record


def x0_fid_across_steps(
    trained: TrainedModel,
    sample: SampleConfig,
    evaluator: Any,
    *,
    every: int,
    out: Path,
    kid: bool = False,
) -> dict[str, Any]:
    """sample_and_measure, plus FID of x0_hat at every `every`-th sampling step (and the
    last): rows in out/x0_fid.json and a plot."""
    from difflab.metrics.steps import X0FidTracker, every_nth_step

    n_steps = len(sampling_plan(trained, sample).timesteps)
    tracker = X0FidTracker(evaluator, every_nth_step(n_steps, every))
    # the feature classifier sees images at the dataset's size: crop the training padding
    cropped = (
        (lambda info: tracker(dataclasses.replace(info, x0_hat=crop_padding(info.x0_hat, pad))))
        if (pad := trained.pad)
        else tracker
    )
    result = sample_and_measure(trained, sample, evaluator, kid=kid, on_step=cropped)
    out.mkdir(parents=True, exist_ok=True)
    rows = tracker.results()
    (out / "x0_fid.json").write_text(json.dumps(rows, indent=2))
    plot = tracker.plot(out / "x0_fid.png", rows=rows)
    return {**result, "x0_fid": {"json": str(out / "x0_fid.json"), "plot": str(plot)}}


def sweep_samplers(
    trained: TrainedModel,
    sample: SampleConfig,
    evaluator: Any,
    *,
    samplers: Sequence[str],
    steps_list: Sequence[int],
    out: Path,
) -> list[dict[str, Any]]:
    """FID for every sampler x step count (other options from `sample`); writes the table/plots."""
    if not samplers or not steps_list:
        raise ValueError("--samplers and --steps-list each need at least one value")
    for name in samplers:
        sampler_spec(name, flag="--samplers")
    rows = []
    for name in samplers:
        for steps in steps_list:
            config = dataclasses.replace(sample, sampler=name, steps=steps)  # validates steps
            row = sample_and_measure(trained, config, evaluator, kid=False)
            log.info("%-9s %3d steps: FID %.3f (%.1f s)", name, steps, row["fid"],
                     row["sampling_seconds"])  # fmt: skip
            rows.append({k: row[k] for k in SWEEP_COLUMNS})
    write_sweep(out, rows)
    return rows


def write_sweep(out: Path, rows: list[dict]) -> None:
    """sweep.json, sweep.md (a table) and sweep_nfe.png / sweep_time.png."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| sampler | eta | steps | NFE | FID | floor | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        floor = f"{r['fid_floor']:.3f}" if r["fid_floor"] is not None else "n/a"
        eta = "" if r.get("eta") is None else f"{r['eta']:g}"
        lines.append(
            f"| {r['sampler']} | {eta} | {r['steps']} | {r['nfe']} | {r['fid']:.3f} | {floor} "
            f"| {r['sampling_seconds']:.1f} |"
        )
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    for x_key, label, name in (
        ("nfe", "model evaluations per image", "sweep_nfe.png"),
        ("sampling_seconds", "sampling wall-clock (s)", "sweep_time.png"),
    ):
        _plot_sweep(rows, x_key, label, out / name)


def _plot_sweep(rows: list[dict], x_key: str, xlabel: str, path: Path) -> None:
    from matplotlib.figure import Figure  # not pyplot: a notebook keeps its inline backend

    fig = Figure(figsize=(5, 3.4), dpi=120)
    ax = fig.subplots()
    for name in dict.fromkeys(r["sampler"] for r in rows):
        mine = [r for r in rows if r["sampler"] == name]
        ax.plot([r[x_key] for r in mine], [r["fid"] for r in mine], marker="o", label=name)
    floors = [r["fid_floor"] for r in rows if r["fid_floor"] is not None]
    if floors:
        ax.axhline(floors[0], color="grey", ls="--", label="real-data floor")
    ax.set(xlabel=xlabel, ylabel="FID", xscale="log", yscale="log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
