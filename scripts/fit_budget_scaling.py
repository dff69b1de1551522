"""How FID falls with the training budget, and how long the 1.5x-floor target would take.

    python scripts/fit_budget_scaling.py RUN_DIR [RUN_DIR ...] [--target 1.5] [--out PNG]
        [--eval-file eval/other.json]

Each RUN_DIR is a finished `difflab quickstart` run (its eval.json and config.json are read):
same recipe, different `--train.minutes`. With --eval-file the FID is read instead from that
file inside each run (the output of `difflab eval RUN --json`, e.g. with another sampler). The excess FID over the real-data floor is fitted
with a power law in the budget, log(FID - floor) = log(a) - b log(minutes), by least squares
in log-log space, and the fit is solved for FID = target x floor. A fixed network saturates
as it nears its capacity, so the answer is a lower bound on the time needed, not a forecast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def read_run(run_dir: Path, eval_file: str | None = None) -> dict:
    """minutes, FID and floor of one run; says which file is missing."""
    eval_path = run_dir / "eval.json"
    for path in (eval_path, run_dir / eval_file if eval_file else eval_path):
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run `difflab eval {run_dir} --json` first")
    summary = json.loads(eval_path.read_text())
    train, evaluation = summary["train"], summary["eval"]
    if eval_file:
        evaluation = json.loads((run_dir / eval_file).read_text())
    return {
        "run": run_dir.name,
        "minutes": train["seconds"] / 60.0,
        "images": train["steps"]
        * json.loads((run_dir / "config.json").read_text())["train"]["batch_size"],
        "fid": evaluation["fid"],
        "floor": evaluation["fid_floor"],
        "n": evaluation["n"],
    }


def fit_power_law(minutes: np.ndarray, excess: np.ndarray) -> tuple[float, float]:
    """(a, b) of excess = a * minutes^-b, least squares on the logs."""
    slope, intercept = np.polyfit(np.log(minutes), np.log(excess), 1)
    return math.exp(intercept), -slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--target", type=float, default=1.5, help="FID as a multiple of the floor")
    parser.add_argument("--out", type=Path, default=None, help="also plot the fit to this PNG")
    parser.add_argument(
        "--eval-file", default=None, help="read FID and floor from RUN_DIR/EVAL_FILE instead"
    )
    args = parser.parse_args()

    rows = sorted((read_run(r, args.eval_file) for r in args.runs), key=lambda row: row["minutes"])
    if len({row["n"] for row in rows}) != 1:
        raise SystemExit("runs were evaluated at different n; their FIDs are not comparable")
    if len(rows) < 2:
        raise SystemExit("need at least two budgets to fit a slope")
    floor = float(np.mean([row["floor"] for row in rows]))
    minutes = np.array([row["minutes"] for row in rows])
    excess = np.array([row["fid"] - floor for row in rows])
    if (excess <= 0).any():
        raise SystemExit("a run is at or below the floor already: nothing to extrapolate")
    a, b = fit_power_law(minutes, excess)

    print("| budget (min) | images seen | FID | x floor | fit |\n|---|---|---|---|---|")
    for row, m in zip(rows, minutes):
        fitted = floor + a * m**-b
        print(
            f"| {m:.2f} | {row['images']:,} | {row['fid']:.3f} | {row['fid'] / floor:.1f}x "
            f"| {fitted:.3f} |"
        )
    goal = (args.target - 1.0) * floor
    needed = (a / goal) ** (1.0 / b)
    print(
        f"\nfloor {floor:.4f} (n={rows[0]['n']}); FID - floor = {a:.3f} * minutes^-{b:.3f}\n"
        f"{args.target}x the floor (FID {args.target * floor:.3f}) at >= {needed:,.0f} minutes "
        f"(= {needed / 60:,.1f} hours, {needed / minutes.max():,.0f}x the longest budget here)"
    )
    if args.out is not None:
        fids = np.array([row["fid"] for row in rows])
        plot(args.out, minutes, fids, floor, a, b, args.target, needed)
        print(args.out)


def plot(out: Path, minutes, fids, floor, a, b, target: float, needed: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.geomspace(minutes.min() * 0.8, max(needed, minutes.max()) * 1.5, 200)
    ax.loglog(minutes, fids, "o", label="measured")
    ax.loglog(grid, floor + a * grid**-b, "-", label=f"floor + {a:.2f} m^-{b:.2f}")
    ax.axhline(floor, color="grey", ls=":", label=f"real-data floor {floor:.3f}")
    ax.axhline(target * floor, color="red", ls="--", label=f"target {target}x floor")
    ax.axvline(needed, color="red", ls=":", label=f"fit reaches it at {needed / 60:,.0f} h")
    ax.axvline(30, color="black", lw=0.8, label="the issue's 30-minute budget")
    ax.set_xlabel("training budget (minutes, 2-core CPU)")
    ax.set_ylabel("FMNIST-FID")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
