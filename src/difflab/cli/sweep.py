"""`difflab eval --sweep`: FID for several samplers x step counts, as a table and two plots."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("difflab")


def _csv(text: str, kind: type) -> list:
    try:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise ValueError(f"--samplers/--steps-list: cannot read {text!r} ({err})") from err


def run_sweep(args: Any, target: Path, sample: Any, evaluator: Any, out: Path) -> list[dict]:
    from difflab.cli.evaluate import is_model_target, sample_and_measure
    from difflab.cli.experiment import load_trained
    from difflab.samplers import SAMPLERS

    if not is_model_target(target):
        raise ValueError(f"--sweep needs a model (run folder or .safetensors), got {target}")
    samplers, steps_list = _csv(args.samplers, str), _csv(args.steps_list, int)
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ValueError(f"--samplers: unknown {unknown}; choose from {', '.join(SAMPLERS)}")
    trained = load_trained(target)
    rows = []
    for name in samplers:
        for steps in steps_list:
            config = dataclasses.replace(sample, sampler=name, steps=steps)
            row = sample_and_measure(trained, config, evaluator, kid=False)
            log.info(
                "%-9s %3d steps: FID %.3f (%.1f s)",
                name,
                steps,
                row["fid"],
                row["sampling_seconds"],
            )
            rows.append(
                {
                    k: row[k]
                    for k in (
                        "sampler",
                        "steps",
                        "eta",
                        "nfe",
                        "fid",
                        "fid_floor",
                        "n",
                        "sampling_seconds",
                    )
                }
            )
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
        _plot(rows, x_key, label, out / name)


def _plot(rows: list[dict], x_key: str, xlabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for name in dict.fromkeys(r["sampler"] for r in rows):
        mine = [r for r in rows if r["sampler"] == name]
        ax.plot([r[x_key] for r in mine], [r["fid"] for r in mine], marker="o", label=name)
    floors = [r["fid_floor"] for r in rows if r["fid_floor"] is not None]
    if floors:
        ax.axhline(floors[0], color="grey", ls="--", label="real-data floor")
    ax.set(xlabel=xlabel, ylabel="FMNIST-FID", xscale="log", yscale="log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
