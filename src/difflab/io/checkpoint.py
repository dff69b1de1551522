"""Atomic, pickle-free checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint `NAME` in a folder is three files:

    NAME.safetensors   every tensor of the state, under flat keys ("model/conv.weight", ...)
    NAME.json          the structure: nested dicts/lists/scalars, tensors replaced by
                       {"__tensor__": key}; tuples and non-string dict keys are tagged so
                       they come back exactly (an optimizer's {0: {...}} state, Adam's betas)
    NAME.complete      the completion marker, written last

Each file is written to a temporary name in the same folder, fsync'ed and renamed, and the
folder is fsync'ed, so a crash at any moment leaves either a complete new checkpoint or none:
readers only trust checkpoints with a marker. Nothing is ever unpickled: safetensors and JSON
only: no torch.load, no pickle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from difflab.files import TMP_SUFFIX, atomic_write, atomic_write_text, fsync_dir

MARKER = ".complete"
_NAME = re.compile(r"^(\d{6})-step(\d+)$")
FORMAT_VERSION = 1


# --- the state tree <-> (tensors, JSON structure) ---


def flatten_state(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into flat tensors and a JSON-able structure that refers to them."""
    tensors: dict[str, torch.Tensor] = {}
    return tensors, _encode(state, "", tensors)


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        name = key or "tensor"
        if name in tensors:
            raise ValueError(f"checkpoint state: two tensors map to the key {name!r}")
        # a copy: safetensors refuses tensors that share storage (tied weights, views)
        tensors[name] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{key}/{k}" if key else k, tensors) for k, v in obj.items()}
        items = [[_encode_key(k), _encode(v, f"{key}/{k}", tensors)] for k, v in obj.items()]
        return {"__items__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(
        f"checkpoint state at {key!r}: cannot store {type(obj).__name__} "
        "(use tensors, numbers, strings, lists, tuples and dicts)"
    )


def _encode_key(k: Any) -> Any:
    if k is None or isinstance(k, bool | int | float | str):
        return k
    raise TypeError(f"checkpoint state: unsupported dict key {k!r}")


def unflatten_state(tensors: dict[str, torch.Tensor], structure: Any) -> Any:
    """Inverse of `flatten_state`."""
    if isinstance(structure, list):
        return [unflatten_state(tensors, v) for v in structure]
    if not isinstance(structure, dict):
        return structure
    if "__tensor__" in structure:
        return tensors[structure["__tensor__"]]
    if "__tuple__" in structure:
        return tuple(unflatten_state(tensors, v) for v in structure["__tuple__"])
    if "__items__" in structure:
        return {k: unflatten_state(tensors, v) for k, v in structure["__items__"]}
    return {k: unflatten_state(tensors, v) for k, v in structure.items()}


# --- atomic files ---


def save_checkpoint(folder: str | Path, state: dict[str, Any], *, step: int) -> Path:
    """Write `state` as a new checkpoint in `folder`; returns the path of its .json file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{_next_sequence(folder):06d}-step{step}"
    tensors, structure = flatten_state(state)
    document = {"format": FORMAT_VERSION, "state": structure}
    text = json.dumps(document, indent=1, allow_nan=True) + "\n"  # keeps key order
    atomic_write(folder / f"{name}.safetensors", lambda p: save_file(tensors, str(p)), fsync=True)
    atomic_write_text(folder / f"{name}.json", text, fsync=True)
    atomic_write_text(folder / f"{name}{MARKER}", f"{step}\n", fsync=True)
    fsync_dir(folder)
    return folder / f"{name}.json"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (its .json path, its name, or a folder: the newest complete one)."""
    json_path = resolve_checkpoint(path)
    stem = json_path.with_suffix("")
    if not stem.with_name(stem.name + MARKER).is_file():
        raise ValueError(
            f"{json_path}: checkpoint has no completion marker ({MARKER}); "
            "it was interrupted while being written - use an earlier one"
        )
    try:
        document = json.loads(json_path.read_text())
        tensors = load_file(str(stem) + ".safetensors")
    except (OSError, ValueError) as e:
        raise ValueError(f"{json_path}: unreadable checkpoint ({e})") from e
    if document.get("format") != FORMAT_VERSION:
        raise ValueError(f"{json_path}: unknown checkpoint format {document.get('format')!r}")
    return unflatten_state(tensors, document["state"])


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint's .json file from a file, a checkpoints folder or a run folder."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        found = list_checkpoints(folder)
        if not found:
            raise FileNotFoundError(f"{path}: no complete checkpoint found to resume from")
        return found[-1]
    if path.suffix in (".safetensors", MARKER, ""):
        path = path.with_suffix(".json") if path.suffix else Path(str(path) + ".json")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints in `folder` (their .json paths), oldest first."""
    folder = Path(folder)
    found = []
    for marker in folder.glob(f"*{MARKER}"):
        name = marker.name[: -len(MARKER)]
        if _NAME.match(name) and (folder / f"{name}.json").is_file():
            found.append(folder / f"{name}.json")
    return sorted(found, key=lambda p: p.name)


def _next_sequence(folder: Path) -> int:
    numbers = [
        int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name.split(".")[0]))
    ]
    return max(numbers, default=0) + 1


def checkpoint_step(json_path: Path) -> int:
    match = _NAME.match(Path(json_path).stem)
    if not match:
        raise ValueError(f"{json_path}: not a checkpoint name")
    return int(match.group(2))


def remove_incomplete(folder: str | Path) -> list[Path]:
    """Delete temporary files and checkpoints without a completion marker (crash leftovers)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    complete = {p.stem for p in list_checkpoints(folder)}
    removed = []
    for p in folder.iterdir():
        stem = p.name.split(".")[0]
        if p.is_file() and (
            p.name.endswith(TMP_SUFFIX) or (_NAME.match(stem) and stem not in complete)
        ):
            p.unlink()
            removed.append(p)
    return removed


def prune_checkpoints(folder: str | Path, *, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints; the marker goes first so none is half-valid."""
    for json_path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        stem = json_path.with_suffix("")
        for suffix in (MARKER, ".json", ".safetensors"):
            stem.with_name(stem.name + suffix).unlink(missing_ok=True)
