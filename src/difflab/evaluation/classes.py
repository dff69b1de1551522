"""What judges a class-conditional model: does a "sneaker" request give a sneaker, and how
good is each class on its own; and the guidance trade-off curve (Ho & Salimans 2022, Fig. 1-2).

- class accuracy: the dataset's feature classifier (the FID model) predicts the class of each
  generated image; the share that matches the requested class.
- per-class FID: class c's samples against the statistics of class c's test images in the same
  feature space, with its own real-data floor (n_c real training images of class c) and n_c.
Classes are drawn in the training set's proportions (largest-remainder rounding).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.config import SampleConfig
from difflab.data.scaling import to_uint8
from difflab.evaluation.measure import (
    guidance_record,
    measure,
    sample_and_measure,
    trained_dataset,
)
from difflab.generation import generate_images, network_evaluations, null_class
from difflab.io.trained import TrainedModel
from difflab.metrics.features import feature_statistics, predict_labels
from difflab.metrics.fid import frechet_distance

log = logging.getLogger("difflab")


def proportional_labels(n: int, counts: Any) -> torch.Tensor:
    """n labels in the proportions of `counts` (largest remainder), sorted by class."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("no labelled training images to take class proportions from")
    exact = n * counts / counts.sum()
    per_class = np.floor(exact).astype(np.int64)
    for c in np.argsort(-(exact - per_class), kind="stable")[: n - per_class.sum()]:
        per_class[c] += 1
    return torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(per_class))


def evaluate_model(
    trained: TrainedModel, sample: SampleConfig, evaluator: Any, *, kid: bool, **kwargs: Any
) -> dict[str, Any]:
    """sample_and_measure, with the class metrics added for a conditional model."""
    if null_class(trained) is None:
        return sample_and_measure(trained, sample, evaluator, kid=kid)
    return measure_conditional(trained, sample, evaluator, kid=kid, **kwargs)


def measure_conditional(
    trained: TrainedModel,
    sample: SampleConfig,
    evaluator: Any,
    *,
    kid: bool,
    data_root: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """FID/KID of sample.n images with classes in the training proportions, at guidance
    sample.guidance, plus class accuracy and per-class FID with per-class floors."""
    from difflab.metrics.real_data import load_labelled

    dataset, root, _ = trained_dataset(trained)
    data = load_labelled(dataset, data_root or root)
    if trained.classes and list(data.classes) != trained.classes:
        raise ValueError(
            f"the model's classes {trained.classes} are not {dataset}'s {list(data.classes)}"
        )
    n_classes = null_class(trained)
    labels = proportional_labels(sample.n, np.bincount(data.train_labels, minlength=n_classes))
    start = time.perf_counter()
    images = generate_images(trained, sample, labels=labels, progress=progress)
    seconds = time.perf_counter() - start
    pixels = to_uint8(images, trained.low, trained.high)
    result = measure(evaluator, pixels, kid=kid)
    fm = evaluator.feature_model
    predicted = predict_labels(fm.module, pixels, low=fm.low, high=fm.high)
    result.update(
        sampler=sample.sampler,
        steps=sample.steps,
        guidance=sample.guidance,
        **guidance_record(sample),
        nfe=network_evaluations(trained, sample),
        sampling_seconds=round(seconds, 2),
        class_accuracy=float((predicted == labels).float().mean()),
        per_class=_per_class(evaluator, pixels, labels, predicted, data),
    )
    return result


def _per_class(evaluator, pixels, labels, predicted, data) -> list[dict[str, Any]]:
    """One row per class: its FID against its own test statistics, floor, n and accuracy."""
    generated = evaluator.features(pixels).double().numpy()
    test = evaluator.features(data.test_images).double().numpy()
    train_labels = np.asarray(data.train_labels)
    rng = np.random.default_rng(0)
    rows = []
    for c, name in enumerate(data.classes):
        mine = (labels == c).numpy()
        n_c, reference = int(mine.sum()), test[np.asarray(data.test_labels) == c]
        if n_c < 2 or len(reference) < 2:
            continue  # a covariance needs two images
        mu, sigma = feature_statistics(reference)
        fid = frechet_distance(*feature_statistics(generated[mine]), mu, sigma)
        pool = np.flatnonzero(train_labels == c)
        real = data.train_images[rng.choice(pool, size=min(n_c, len(pool)), replace=False)]
        floor = frechet_distance(*feature_statistics(evaluator.features(real).double()), mu, sigma)
        accuracy = float((predicted[mine] == c).float().mean())
        rows.append({"class": c, "name": name, "n": n_c, "fid": fid, "fid_floor": floor,
                     "accuracy": accuracy, "reference_n": len(reference)})  # fmt: skip
    return rows


def guidance_sweep(
    trained: TrainedModel,
    sample: SampleConfig,
    evaluator: Any,
    *,
    scales: list[float],
    out: Path,
    data_root: str | None = None,
) -> list[dict[str, Any]]:
    """FID, class accuracy and sampling time against the guidance scale: a table
    (guidance.json, guidance.md) and a plot (guidance.png) in `out`."""
    if not scales:
        raise ValueError("--guidance-sweep: give at least one scale, e.g. 0,1,2,3,5")
    if null_class(trained) is None:
        raise ValueError("--guidance-sweep needs a class-conditional model (--model.num-classes)")
    rows = []
    for w in scales:
        r = measure_conditional(
            trained, dataclasses.replace(sample, guidance=w), evaluator, kid=False,
            data_root=data_root,
        )  # fmt: skip
        log.info("guidance %g: FID %.3f, class accuracy %.3f (%.1f s)", w, r["fid"],
                 r["class_accuracy"], r["sampling_seconds"])  # fmt: skip
        keys = ("guidance", "fid", "fid_floor", "class_accuracy", "nfe", "n", "sampling_seconds")
        rows.append({k: r[k] for k in keys})
    write_guidance(out, rows)
    return rows


def write_guidance(out: Path, rows: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "guidance.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| guidance w | FID | floor | class accuracy | NFE | seconds |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        floor = "n/a" if r["fid_floor"] is None else f"{r['fid_floor']:.3f}"
        lines.append(
            f"| {r['guidance']:g} | {r['fid']:.3f} | {floor} | {r['class_accuracy']:.3f} "
            f"| {r['nfe']} | {r['sampling_seconds']:.1f} |"
        )
    (out / "guidance.md").write_text("\n".join(lines) + "\n")
    _plot_guidance(rows, out / "guidance.png")


def _plot_guidance(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure  # not pyplot: a notebook keeps its inline backend

    w = [r["guidance"] for r in rows]
    fig = Figure(figsize=(8, 3.2), dpi=120)
    left, right = fig.subplots(1, 2)
    left.plot(w, [r["fid"] for r in rows], marker="o", label="FID (classes balanced)")
    if rows[0]["fid_floor"] is not None:
        left.axhline(rows[0]["fid_floor"], color="grey", ls="--", label="real-data floor")
    left.set(xlabel="guidance scale w", ylabel="FID", yscale="log")
    left.legend(fontsize=7)
    right.plot(w, [r["class_accuracy"] for r in rows], marker="o", color="C1")
    right.set(xlabel="guidance scale w", ylabel="class accuracy", ylim=(0, 1.02))
    for r in rows:
        right.annotate(f"{r['sampling_seconds']:.0f}s", (r["guidance"], r["class_accuracy"]),
                       fontsize=6, xytext=(2, -9), textcoords="offset points")  # fmt: skip
    fig.suptitle("the guidance trade-off (sampling time per point)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
