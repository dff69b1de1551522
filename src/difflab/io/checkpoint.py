"""Atomic, pickle-free checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint `NAME` in a folder is three files:

    NAME.safetensors   every tensor of the state, under flat keys ("model/conv.weight", ...)
    NAME.json          the structure: nested dicts/lists/scalars, tensors replaced by
                       {"__tensor__": key}; tuples and non-string dict keys are tagged so
                       they come back exactly (an optimizer's {0: {...}} state, Adam's betas);
                       "tensors" records the .safetensors file's sha256 and size
    NAME.complete      the completion marker, written last: {"step": S, "json_sha256": ...}

Each file is written to a temporary name in the same folder, fsync'ed and renamed, and the
folder is fsync'ed, so a crash at any moment leaves either a complete new checkpoint or none:
readers only trust checkpoints with a marker. Nothing is ever unpickled: safetensors and JSON
only: no torch.load, no pickle.

Checkpoints verify before they load: the marker's hash covers the JSON, the JSON's hash covers
the tensors. A damaged checkpoint (flipped bits, a cut file, a missing tensor) raises
`DamagedCheckpoint`; `newest_intact_checkpoint` skips it with one warning and falls back to the
previous one. Damaged files are never deleted or moved (pruning leaves them too). Checkpoints
written before the hashes existed (a marker holding only the step) still load, with a warning:
their tensors file is checked for completeness only, not for flipped bits.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from difflab.files import TMP_SUFFIX, atomic_write, atomic_write_text, fsync_dir, sha256_file

log = logging.getLogger("difflab.io")

MARKER = ".complete"
_NAME = re.compile(r"^(\d{6})-step(\d+)$")
FORMAT_VERSION = 1  # the hashes are additive keys: older readers still load these files


class DamagedCheckpoint(ValueError):
    """A checkpoint whose files do not match their recorded hashes, sizes or structure."""


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
    digest: list[str] = []

    def write_tensors(tmp: Path) -> None:
        save_file(tensors, str(tmp))
        digest.append(sha256_file(tmp))  # the bytes that are renamed into place

    tensors_path = folder / f"{name}.safetensors"
    atomic_write(tensors_path, write_tensors, fsync=True)
    document = {
        "format": FORMAT_VERSION,
        "tensors": {"sha256": digest[0], "bytes": tensors_path.stat().st_size},
        "state": structure,
    }
    text = json.dumps(document, indent=1, allow_nan=True) + "\n"  # keeps key order
    json_path = atomic_write_text(folder / f"{name}.json", text, fsync=True)
    marker = {"step": step, "json_sha256": sha256_file(json_path)}
    atomic_write_text(folder / f"{name}{MARKER}", json.dumps(marker) + "\n", fsync=True)
    fsync_dir(folder)
    return json_path


def load_checkpoint(path: str | Path, *, require: Sequence[str] = ()) -> dict[str, Any]:
    """Read a checkpoint (its .json path, its name, or a folder: the newest complete one).

    Verifies it first (`verify_checkpoint`); `require`: top-level keys the state must have.
    Raises `DamagedCheckpoint` naming the file and what is wrong.
    """
    json_path = resolve_checkpoint(path)
    document = verify_checkpoint(json_path)
    if "tensors" not in document:
        log.warning(
            "%s: written before checkpoints carried hashes; loaded without verifying its bytes",
            json_path,
        )
    tensors_path = json_path.with_suffix(".safetensors")
    try:
        tensors = load_file(str(tensors_path))
        state = unflatten_state(tensors, document["state"])
    except KeyError as e:
        raise DamagedCheckpoint(f"{tensors_path}: damaged checkpoint: no tensor {e}") from e
    except Exception as e:  # SafetensorError is no ValueError
        raise DamagedCheckpoint(f"{tensors_path}: damaged checkpoint: unreadable ({e})") from e
    missing = [key for key in require if not isinstance(state, dict) or key not in state]
    if missing:
        raise DamagedCheckpoint(f"{json_path}: damaged checkpoint: state has no {missing}")
    return state


def verify_checkpoint(json_path: str | Path) -> dict[str, Any]:
    """The checkpoint's parsed JSON document, once its marker, JSON and tensors file agree.

    Cheap beside loading: hashes the files, reads no tensor. Raises `DamagedCheckpoint`.
    """
    json_path = Path(json_path)
    stem = json_path.with_suffix("")
    marker_path = stem.with_name(stem.name + MARKER)
    tensors_path = stem.with_name(stem.name + ".safetensors")
    if not marker_path.is_file():
        raise ValueError(
            f"{json_path}: checkpoint has no completion marker ({MARKER}); "
            "it was interrupted while being written - use an earlier one"
        )
    for p in (marker_path, json_path, tensors_path):
        _refuse_escaping_link(p)
    expected = _read_marker(marker_path).get("json_sha256")
    try:
        if expected is not None and sha256_file(json_path) != expected:
            raise DamagedCheckpoint(
                f"{json_path}: damaged checkpoint: sha256 differs from its {MARKER} marker"
            )
        document = json.loads(json_path.read_text())
    except OSError as e:
        raise DamagedCheckpoint(f"{json_path}: damaged checkpoint: unreadable ({e})") from e
    except ValueError as e:
        raise DamagedCheckpoint(f"{json_path}: damaged checkpoint: not JSON ({e})") from e
    if not isinstance(document, dict) or "state" not in document:
        raise DamagedCheckpoint(f"{json_path}: damaged checkpoint: no 'state'")
    if document.get("format") != FORMAT_VERSION:
        raise ValueError(f"{json_path}: unknown checkpoint format {document.get('format')!r}")
    if expected is not None and not isinstance(document.get("tensors"), dict):
        raise DamagedCheckpoint(f"{json_path}: damaged checkpoint: no 'tensors' hash")
    _verify_tensors(tensors_path, document.get("tensors"))
    return document


def _refuse_escaping_link(path: Path) -> None:
    if path.is_symlink() and path.resolve().parent != path.parent.resolve():
        raise DamagedCheckpoint(f"{path}: a link out of its folder; not followed")


def _read_marker(marker_path: Path) -> dict[str, Any]:
    """{"step", "json_sha256"}; a marker of the hash-less format holds only the step."""
    try:
        marker = json.loads(marker_path.read_text())
    except (OSError, ValueError) as e:
        raise DamagedCheckpoint(f"{marker_path}: damaged checkpoint marker ({e})") from e
    if isinstance(marker, int) and not isinstance(marker, bool):
        return {"step": marker}
    if not isinstance(marker, dict) or not isinstance(marker.get("json_sha256"), str):
        raise DamagedCheckpoint(f"{marker_path}: damaged checkpoint marker (no json_sha256)")
    return marker


def _verify_tensors(tensors_path: Path, record: dict[str, Any] | None) -> None:
    if not tensors_path.is_file():
        raise DamagedCheckpoint(f"{tensors_path}: damaged checkpoint: file missing")
    size = tensors_path.stat().st_size
    if record is None:  # hash-less format: at least the file must be whole
        try:
            with safe_open(str(tensors_path), framework="pt"):
                pass
        except Exception as e:
            raise DamagedCheckpoint(f"{tensors_path}: damaged checkpoint ({e})") from e
        return
    if size != record.get("bytes"):
        raise DamagedCheckpoint(
            f"{tensors_path}: damaged checkpoint: {size} bytes, {record.get('bytes')} recorded"
        )
    if sha256_file(tensors_path) != record.get("sha256"):
        raise DamagedCheckpoint(
            f"{tensors_path}: damaged checkpoint: sha256 differs from its .json"
        )


def newest_intact_checkpoint(path: str | Path) -> Path:
    """The checkpoint to resume from: a file as given, or a folder's newest that verifies.

    Each newer damaged checkpoint is skipped with one warning line naming it and the reason.
    """
    path = Path(path)
    if not path.is_dir():
        return resolve_checkpoint(path)
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = list_checkpoints(folder)
    for json_path in reversed(found):
        try:
            verify_checkpoint(json_path)
        except DamagedCheckpoint as e:
            log.warning("skipping a damaged checkpoint: %s", e)
            continue
        return json_path
    if not found:
        raise FileNotFoundError(f"{path}: no complete checkpoint found to resume from")
    raise DamagedCheckpoint(
        f"{folder}: all {len(found)} checkpoints are damaged (see the warnings above); "
        "nothing to resume from"
    )


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
    """Keep the newest `keep` complete checkpoints; the marker goes first so none is half-valid.

    An older checkpoint that fails verification is left in place (evidence, never deleted).
    """
    for json_path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        try:
            verify_checkpoint(json_path)
        except ValueError:
            continue
        stem = json_path.with_suffix("")
        for suffix in (MARKER, ".json", ".safetensors"):
            stem.with_name(stem.name + suffix).unlink(missing_ok=True)
