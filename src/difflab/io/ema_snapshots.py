"""Post-hoc EMA snapshots on disk, and the model files reconstructed from them.

A run trained with --train.posthoc-ema-every K holds `ema_snapshots/ema-<step>-<sigma_rel>.safetensors`:
one power-function average of the weights (difflab.models.posthoc_ema) per profile, every K
steps and at the end. Each file is a plain state dict (averaged parameters, buffers as they
were) whose safetensors metadata records step, sigma_rel, gamma and the averaged keys.
Nothing is unpickled; a symlink that leaves the folder is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from difflab.config import config_from_dict
from difflab.files import atomic_write
from difflab.models.posthoc_ema import (
    profile_residual,
    sigma_rel_to_gamma,
    solve_posthoc_weights,
)

log = logging.getLogger("difflab")

SNAPSHOT_FORMAT = "difflab-ema-snapshot/1"
SNAPSHOT_DIR = "ema_snapshots"


@dataclass(frozen=True)
class Snapshot:
    """One stored power-function average: where, at which step, with which profile."""

    path: Path
    step: int
    sigma_rel: float
    gamma: float
    averaged: frozenset[str]


def snapshot_name(step: int, sigma_rel: float) -> str:
    return f"ema-{step:09d}-{sigma_rel:.4f}.safetensors"


def save_snapshot(
    folder: Path, state: dict[str, torch.Tensor], *, step: int, sigma_rel: float, gamma: float,
    averaged: Sequence[str],
) -> Path:  # fmt: skip
    """Write one snapshot atomically (a crash leaves the old file or none, never half of one)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {
        "format": SNAPSHOT_FORMAT,
        "step": str(step),
        "sigma_rel": repr(float(sigma_rel)),
        "gamma": repr(float(gamma)),
        "averaged": json.dumps(sorted(averaged)),
    }
    path = folder / snapshot_name(step, sigma_rel)
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_snapshot_info(path: Path) -> Snapshot:
    """The metadata of one snapshot file (its tensors are not read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        if meta.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {SNAPSHOT_FORMAT!r}")
        return Snapshot(
            path, int(meta["step"]), float(meta["sigma_rel"]), float(meta["gamma"]),
            frozenset(json.loads(meta["averaged"])),
        )  # fmt: skip
    except Exception as err:  # safetensors raises its own error type on a damaged header
        raise ValueError(
            f"{path}: not a readable post-hoc EMA snapshot ({err}); delete it (the other "
            "snapshots still reconstruct, with fewer profiles)"
        ) from err


def list_snapshots(folder: str | Path) -> list[Snapshot]:
    """Every snapshot in `folder`, by step then sigma_rel; symlinks leaving it are refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no post-hoc EMA snapshots; train with --train.posthoc-ema-every K"
        )
    root = folder.resolve()
    found = []
    for path in sorted(folder.glob("ema-*.safetensors")):
        if path.resolve().parent != root:
            raise ValueError(f"{path}: a symlink out of {folder}; refusing to read it")
        found.append(read_snapshot_info(path))
    return sorted(found, key=lambda s: (s.step, s.sigma_rel))


def load_snapshot(snapshot: Snapshot) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(snapshot.path))


def posthoc_weights(
    snapshots: Sequence[Snapshot], sigma_rel: float, step: int
) -> tuple[list[Snapshot], Any, float]:
    """(snapshots used, their weights, profile residual relative to the target's norm) for
    the average of width `sigma_rel` at `step`, from every snapshot taken at or before it."""
    used = [s for s in snapshots if s.step <= step]
    if not used:
        raise ValueError(f"no post-hoc EMA snapshot at or before step {step}")
    gamma = sigma_rel_to_gamma(sigma_rel)
    t_in, g_in = [s.step for s in used], [s.gamma for s in used]
    weights = solve_posthoc_weights(t_in, g_in, step, gamma)
    norm = (gamma + 1) / ((2 * gamma + 1) * step) ** 0.5  # ||p_{step,gamma}||_2
    return used, weights, profile_residual(t_in, g_in, weights, step, gamma) / norm


def reconstruct_state(
    folder: str | Path, sigma_rel: float, *, step: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, what was done) of the EMA of width `sigma_rel` at `step` (default: the
    newest snapshot's), reconstructed from the snapshots in `folder` (EDM2 Algorithm 3)."""
    from difflab.models.posthoc_ema import combine_states

    snapshots = list_snapshots(folder)
    if not snapshots:
        raise FileNotFoundError(f"{folder}: holds no post-hoc EMA snapshots")
    step = snapshots[-1].step if step is None else step
    used, weights, residual = posthoc_weights(snapshots, sigma_rel, step)
    averaged = frozenset.intersection(*(s.averaged for s in used))
    pairs = ((float(x), load_snapshot(s)) for x, s in zip(weights, used))
    state = combine_states(pairs, set(averaged))
    info = {
        "sigma_rel": float(sigma_rel),
        "step": int(step),
        "snapshots": len(used),
        "stored_sigma_rels": sorted({s.sigma_rel for s in used}),
        "relative_profile_residual": residual,
    }
    return state, info


def export_posthoc_model(
    run_dir: str | Path, sigma_rel: float, out: str | Path, *, step: int | None = None
) -> tuple[Path, dict[str, Any]]:
    """model.safetensors + model.json in `out` (loadable by load_trained): the run's network
    with the reconstructed EMA of width `sigma_rel`. The run must have finished (model.json)."""
    from difflab.io.model_file import save_model
    from difflab.io.trained import load_trained, model_meta

    run_dir = Path(run_dir)
    state, info = reconstruct_state(run_dir / SNAPSHOT_DIR, sigma_rel, step=step)
    if not (run_dir / "model.json").is_file():
        raise FileNotFoundError(
            f"{run_dir / 'model.json'}: missing; post-hoc EMA needs the run's architecture, "
            "written when training ends (finish or resume the run first)"
        )
    trained = load_trained(run_dir)
    model = trained.model
    model.load_state_dict(state)  # checks that the snapshots fit the run's network
    config = config_from_dict(trained.meta["run_config"])
    image_shape = trained.image_shape
    autoencoder = trained.meta.get("autoencoder")  # a latent model keeps its autoencoder
    meta = model_meta(config, model, image_shape, autoencoder=autoencoder)
    new_meta = {**meta, "posthoc_ema": info}
    return save_model(out, model.state_dict(), new_meta), info
