"""FID against the EMA width, after training: reconstruct each sigma_rel from a run's post-hoc
EMA snapshots (difflab.io.ema_snapshots), sample, measure, and name the best.

The library beneath `difflab ema --sweep`; rows go to RUN/eval/ema_sweep.json with a plot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from difflab.config import SampleConfig
from difflab.evaluation import dataset_evaluator, sample_and_measure, trained_dataset
from difflab.files import atomic_write, atomic_write_json
from difflab.io.ema_snapshots import SNAPSHOT_DIR, reconstruct_state
from difflab.io.trained import load_trained

log = logging.getLogger("difflab")


def sweep_posthoc_ema(
    run_dir: str | Path,
    sigma_rels: Sequence[float],
    sample: SampleConfig,
    *,
    step: int | None = None,
    evaluator: Any = None,
    out: str | Path | None = None,
    device: Any = "cpu",
    guide: str | Path | None = None,
) -> dict[str, Any]:
    """FID of the run's own model and of each sigma_rel reconstructed at `step` (default: the
    newest snapshot's), all with the same seeds; writes ema_sweep.json and ema_sweep.png into
    `out` (default RUN/eval) and returns the table. `evaluator`: default, the dataset's own;
    `guide`: autoguidance's guide instead of RUN/guide."""
    if not sigma_rels:
        raise ValueError("--sweep: give at least one sigma_rel, e.g. --sweep 0.05,0.1")
    run_dir = Path(run_dir)
    trained = load_trained(run_dir, device=device, guide=guide)
    if evaluator is None:
        dataset, root, shape = trained_dataset(trained)
        evaluator = dataset_evaluator(dataset, shape, data_root=root)
    baseline = sample_and_measure(trained, sample, evaluator, kid=False, progress=False)
    log.info("the run's own EMA model: FID %.3f", baseline["fid"])
    rows = []
    for sigma_rel in sigma_rels:
        state, info = reconstruct_state(run_dir / SNAPSHOT_DIR, sigma_rel, step=step)
        trained.model.load_state_dict(state)
        result = sample_and_measure(trained, sample, evaluator, kid=False, progress=False)
        log.info("sigma_rel %.3f: FID %.3f", sigma_rel, result["fid"])
        rows.append({**info, "fid": result["fid"], "fid_floor": result.get("fid_floor")})
    best = min(rows, key=lambda r: r["fid"])
    table = {
        "run": str(run_dir),
        "n": sample.n,
        "sampler": sample.sampler,
        "steps": sample.steps,
        "trained_ema_fid": baseline["fid"],
        "rows": rows,
        "best_sigma_rel": best["sigma_rel"],
        "best_fid": best["fid"],
    }
    folder = Path(out) if out is not None else run_dir / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "ema_sweep.json", table)
    table["plot"] = str(plot_sweep(table, folder / "ema_sweep.png"))
    return table


def plot_sweep(table: dict[str, Any], path: Path) -> Path:
    """FID against sigma_rel, with the run's own EMA model as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(table["rows"], key=lambda r: r["sigma_rel"])
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.plot([r["sigma_rel"] for r in rows], [r["fid"] for r in rows], marker="o",
            label="post-hoc EMA")  # fmt: skip
    ax.axhline(table["trained_ema_fid"], color="grey", ls="--", label="run's EMA (fixed decay)")
    ax.set(xlabel="sigma_rel (EMA width / training length)", ylabel="FID", xscale="log")
    widths = [r["sigma_rel"] for r in rows]  # label the measured widths, not log-scale minors
    ax.set_xticks(widths, [f"{w:g}" for w in widths], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_title(f"n={table['n']}, {table['sampler']} {table['steps']} steps", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
