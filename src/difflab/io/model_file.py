"""Trained-model files: `model.safetensors` (weights) beside `model.json` (how to rebuild them).

The JSON holds everything a sampler needs besides the weights: the network's architecture, the
diffusion schedule and objective, and the data range. Nothing here is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from difflab.files import atomic_write, atomic_write_text, sha256_file

MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"


def save_model(folder: str | Path, state_dict: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write model.safetensors and model.json atomically into `folder`; returns the weights path."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / MODEL_WEIGHTS
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    meta = {**meta, "weights_sha256": sha256_file(weights)}
    atomic_write_text(folder / MODEL_META, json.dumps(meta, indent=2, sort_keys=True))
    return weights


def resolve_model_path(path: str | Path) -> tuple[Path, Path]:
    """(weights, meta) for a run folder, a folder with model files, or a .safetensors file."""
    path = Path(path)
    if path.is_dir():
        weights = path / MODEL_WEIGHTS
    elif path.suffix == ".safetensors":
        weights = path
    else:
        raise ValueError(f"{path}: expected a run folder or a .safetensors file")
    meta = (
        weights.with_name(MODEL_META)
        if weights.name == MODEL_WEIGHTS
        else weights.with_suffix(".json")
    )
    if not weights.is_file():
        hint = " (training not finished? use a checkpoint via --resume)" if path.is_dir() else ""
        raise FileNotFoundError(f"{weights}: no trained model here{hint}")
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: missing; it describes how to rebuild {weights.name}")
    for file in (weights, meta):
        _refuse_escaping_link(file)
    return weights, meta


def _refuse_escaping_link(path: Path) -> None:
    """A model file is read where it lies: a symlink leading out of its folder is refused."""
    if path.is_symlink() and path.resolve().parent != path.parent.resolve():
        raise ValueError(
            f"{path}: a link out of its folder (to {path.resolve()}); not followed: "
            "copy the file itself into the folder"
        )


def load_model_file(
    path: str | Path, *, verify: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, meta) from a run folder or model file; checks the recorded sha256."""
    from safetensors.torch import load_file

    weights, meta_path = resolve_model_path(path)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{meta_path}: not valid JSON ({err}); restore it or re-export the model"
        ) from err
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object")
    expected = meta.get("weights_sha256")
    if verify and expected and sha256_file(weights) != expected:
        raise ValueError(
            f"{weights}: sha256 does not match {meta_path.name}; the file changed "
            "or is damaged. Re-export it or pass the matching model.json."
        )
    try:  # without a recorded hash, safetensors still checks its header against the file size
        return load_file(str(weights)), meta
    except Exception as err:  # safetensors raises its own SafetensorError type
        raise ValueError(
            f"{weights}: not a readable safetensors file ({err}); it is truncated or damaged"
        ) from err
