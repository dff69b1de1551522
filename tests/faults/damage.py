"""Not a test: the kinds of damage the fault suite does to a file, each a function of its path.

Each one leaves the file damaged the way it happens to real files: a crash mid-write cuts it,
a bad disk or a bad copy flips bytes, a hand edit or another tool's version drops a key, a
"helpful" symlink leads out of the folder, a tool writes tensors of the wrong dtype or shape
(and, to be sure the product looks past the hashes, records the new file's hashes too).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from difflab.files import sha256_file

GARBAGE_DB = b"this is not a SQLite database\n" * 50


def truncate(path: Path) -> None:
    """Keep the first half of the bytes (a crash while the file was written or copied)."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def bit_flip(path: Path, n: int = 256) -> None:
    """Invert `n` bytes in the middle (a bad disk, a bad copy); the size stays the same."""
    data = bytearray(path.read_bytes())
    middle = max(0, len(data) // 2 - n // 2)
    data[middle : middle + n] = bytes(b ^ 0xFF for b in data[middle : middle + n])
    path.write_bytes(bytes(data))


def cut_last_row(path: Path) -> None:
    """A JSON-lines file whose last row was cut in the middle (a crash during the append)."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + (len(data) - start) // 2])


def cut_json(path: Path) -> None:
    """A JSON document cut mid-way: never valid (its outermost bracket is never closed)."""
    text = path.read_text()
    path.write_text(text[: max(1, len(text) // 2)])


def delete_key(key: str) -> Callable[[Path], None]:
    """Remove one top-level key of a JSON object and write it back (a hand edit)."""

    def damage(path: Path) -> None:
        document = json.loads(path.read_text())
        del document[key]
        path.write_text(json.dumps(document, indent=1))

    damage.__name__ = f"delete_key({key})"
    return damage


def link_out(path: Path) -> None:
    """Replace the file by a symlink to an identical copy outside its folder: the bytes are
    right, the place is not (`ln -s /somewhere/else RUN/file`)."""
    outside = _outside(path)
    outside.mkdir(exist_ok=True)
    target = outside / path.name
    shutil.copyfile(path, target)
    path.unlink()
    path.symlink_to(target)


def _outside(path: Path) -> Path:
    """The case's `outside/` folder: beside the `runs/` folder that holds `path`."""
    for parent in path.parents:
        if parent.name == "runs":
            return parent.parent / "outside"
    return path.parent.parent / "outside"


def garbage_db(path: Path) -> None:
    """Text where SQLite expects a database (and no -wal/-shm beside it)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(GARBAGE_DB)


# --- safetensors whose tensors are of the wrong dtype or shape, with matching hashes ---------


def _rewrite_tensors(path: Path, change: Callable) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file({k: change(k, v) for k, v in tensors.items()}, str(path))


def _halved(key, tensor):
    return tensor.half() if tensor.is_floating_point() else tensor


def _first_conv_cut(key, tensor):
    return tensor[:1].contiguous() if tensor.ndim == 4 else tensor


def _rehash_model(weights: Path) -> None:
    meta_path = weights.with_name("model.json")
    meta = json.loads(meta_path.read_text())
    meta["weights_sha256"] = sha256_file(weights)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True))


def _rehash_checkpoint(tensors_path: Path) -> None:
    json_path = tensors_path.with_suffix(".json")
    document = json.loads(json_path.read_text())
    document["tensors"] = {
        "sha256": sha256_file(tensors_path),
        "bytes": tensors_path.stat().st_size,
    }
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    marker = {"step": json.loads(tensors_path.with_suffix(".complete").read_text())["step"]}
    marker["json_sha256"] = sha256_file(json_path)
    tensors_path.with_suffix(".complete").write_text(json.dumps(marker) + "\n")


def _rehash(path: Path) -> None:
    if path.name == "model.safetensors":
        _rehash_model(path)
    else:
        _rehash_checkpoint(path)


def wrong_dtype(path: Path) -> None:
    """Every float tensor stored as float16; the recorded hashes updated to match."""
    _rewrite_tensors(path, _halved)
    _rehash(path)


def wrong_shape(path: Path) -> None:
    """Every 4-d tensor (the convolutions) cut to one output channel; hashes updated."""
    _rewrite_tensors(path, _first_conv_cut)
    _rehash(path)
