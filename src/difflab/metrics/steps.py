"""FID of the predicted x0 across sampling steps, through a sampler's `on_step` callback.

    tracker = X0FidTracker(evaluator, steps=every_nth_step(len(timesteps), 50))
    for batch_noise in batches:                      # any batching: features accumulate per step
        sample_ddim(predict_noise, batch_noise, alpha_bar, timesteps, on_step=tracker)
    rows = tracker.results()                         # [{"i", "t", "fid", "fid_floor", "n"}, ...]
    tracker.plot("x0_fid.png")

The sampler calls `on_step(StepInfo(i, t, x_t, x0_hat))`; only `i`, `t` and `x0_hat` are read
here, so metrics never imports samplers. Features are extracted at once, so memory holds
(n, D) features per tracked step, not images.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from difflab.metrics.evaluator import ImageEval


def every_nth_step(n_steps: int, every: int = 50) -> list[int]:
    """Step indices 0, every, 2*every, ... and always the last one (n_steps - 1)."""
    if n_steps < 1 or every < 1:
        raise ValueError(f"n_steps and every must be >= 1, got {n_steps} and {every}")
    return sorted(set(range(0, n_steps, every)) | {n_steps - 1})


class X0FidTracker:
    """An `on_step` callback: features of x0_hat at the chosen step indices, over all batches."""

    def __init__(self, evaluator: ImageEval, steps: Iterable[int]) -> None:
        self.evaluator = evaluator
        self.steps = set(int(i) for i in steps)
        if not self.steps:
            raise ValueError("steps is empty: pass e.g. every_nth_step(n_steps, 50)")
        self._features: dict[int, list[torch.Tensor]] = {}
        self._t: dict[int, float] = {}

    def __call__(self, info: Any) -> None:
        i = int(info.i)
        if i in self.steps:
            self._features.setdefault(i, []).append(self.evaluator.features(info.x0_hat.detach()))
            self._t[i] = float(torch.as_tensor(info.t).float().flatten()[0])

    def results(self, *, floor: bool = True) -> list[dict[str, Any]]:
        """One JSON-able row per tracked step, in step order."""
        rows = []
        for i in sorted(self._features):
            features = torch.cat(self._features[i])
            fid = self.evaluator.fid_from_features(features, floor=floor)
            rows.append({"i": i, "t": self._t[i], **fid.to_dict()})
        return rows

    def plot(self, path: str | Path, *, rows: list[dict[str, Any]] | None = None) -> Path:
        """Line plot of FID(x0_hat) against the sampling step; returns the PNG path."""
        # a Figure without pyplot: no backend switched (a notebook keeps its inline plots)
        from matplotlib.figure import Figure

        rows = rows if rows is not None else self.results()
        fig = Figure(figsize=(5, 3.2), dpi=120)
        ax = fig.subplots()
        ax.plot([r["i"] for r in rows], [r["fid"] for r in rows], marker="o", label="FID(x0_hat)")
        floors = [r["fid_floor"] for r in rows if r["fid_floor"] is not None]
        if floors:
            ax.axhline(
                floors[-1], color="grey", ls="--", label=f"real-data floor (n={rows[-1]['n']})"
            )
        ax.set(xlabel="sampling step i", ylabel="FID", yscale="log", title="FID of predicted x0")
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path)
        return path
