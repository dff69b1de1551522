"""Pickle-free, atomic checkpoints: exact round trips, interrupted saves, leftover cleanup."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

import difflab.files
import difflab.io.checkpoint as ckpt
from difflab.io.checkpoint import (
    flatten_state,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_incomplete,
    save_checkpoint,
    unflatten_state,
)


def adam_state() -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return opt.state_dict()


def assert_same(a, b):
    assert isinstance(b, dict) if isinstance(a, dict) else type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_structure_round_trip_keeps_tuples_int_keys_and_dtypes():
    state = {
        "optimizer": adam_state(),
        "rng": torch.get_rng_state(),
        "x": (1, 2.5, None),
        "flags": [True, "s"],
        "ints": torch.arange(3, dtype=torch.int64),
        "__odd": 1,
    }
    tensors, structure = flatten_state(state)
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    json.dumps(structure)  # the structure is plain JSON
    assert_same(unflatten_state(tensors, json.loads(json.dumps(structure))), state)


def test_save_load_round_trip_and_listing(tmp_path):
    state = {"model": torch.nn.Linear(3, 2).state_dict(), "optimizer": adam_state(), "step": 7}
    path = save_checkpoint(tmp_path, state, step=7)
    assert path.name == "000001-step7.json"
    assert {p.name for p in tmp_path.iterdir()} == {
        "000001-step7.json",
        "000001-step7.safetensors",
        "000001-step7.complete",
    }
    assert_same(load_checkpoint(tmp_path), state)
    save_checkpoint(tmp_path, state, step=9)
    assert [p.stem for p in list_checkpoints(tmp_path)] == ["000001-step7", "000002-step9"]
    prune_checkpoints(tmp_path, keep=1)
    assert [p.stem for p in list_checkpoints(tmp_path)] == ["000002-step9"]


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch, fail_at):
    good = {"w": torch.ones(3), "step": 1}
    save_checkpoint(tmp_path, good, step=1)
    real_replace, calls = difflab.files.os.replace, [0]

    def crash_on_nth_rename(src, dst):
        calls[0] += 1
        if calls[0] == fail_at:  # the process "dies" before this rename
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(difflab.files.os, "replace", crash_on_nth_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"w": torch.zeros(3), "step": 2}, step=2)
    monkeypatch.undo()
    assert [p.stem for p in list_checkpoints(tmp_path)] == ["000001-step1"]
    assert_same(load_checkpoint(tmp_path), good)
    if fail_at == 3:  # both data files are in place, only the marker is missing
        with pytest.raises(ValueError, match="no completion marker"):
            load_checkpoint(tmp_path / "000002-step2.json")
    # the interrupted write removed its own temporary file; the leftovers are step 2's files
    removed = {p.name for p in remove_incomplete(tmp_path)}
    assert len(removed) == fail_at - 1 and all("000002" in name for name in removed)
    assert not list(tmp_path.glob("*.tmp"))
    assert {p.name.split(".")[0] for p in tmp_path.iterdir()} == {"000001-step1"}


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load tried to unpickle")

    save_checkpoint(tmp_path, {"optimizer": adam_state()}, step=3)
    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    assert load_checkpoint(tmp_path)["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert "torch.load(" not in inspect.getsource(ckpt)


def test_unknown_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot store object"):
        save_checkpoint(tmp_path, {"bad": object()}, step=0)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)


# --- verification before loading, fallback to the newest intact checkpoint ---


def flip_bytes(path, n: int = 256) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + n] = bytes(b ^ 0xFF for b in data[middle : middle + n])
    path.write_bytes(bytes(data))


def cut_in_half(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def two_checkpoints(folder):
    """Step 1 (ones) and step 2 (a bigger tensor of twos): the second one gets damaged."""
    save_checkpoint(folder, {"w": torch.ones(64), "step": 1}, step=1)
    save_checkpoint(folder, {"w": torch.full((256,), 2.0), "step": 2}, step=2)
    return folder / "000002-step2"


def folder_bytes(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


DAMAGES = {
    "flipped tensors": (lambda stem: flip_bytes(stem.with_suffix(".safetensors")), "sha256"),
    "cut tensors": (lambda stem: cut_in_half(stem.with_suffix(".safetensors")), "bytes"),
    "cut json": (lambda stem: cut_in_half(stem.with_suffix(".json")), "sha256"),
    "tensors gone": (lambda stem: stem.with_suffix(".safetensors").unlink(), "missing"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_newest_checkpoint_is_skipped_with_one_warning(tmp_path, caplog, damage):
    do_damage, reason = DAMAGES[damage]
    stem = two_checkpoints(tmp_path)
    do_damage(stem)
    before = folder_bytes(tmp_path)
    with pytest.raises(ckpt.DamagedCheckpoint, match=reason):
        load_checkpoint(stem.with_suffix(".json"))  # named explicitly: an error, no fallback
    caplog.clear()
    chosen = ckpt.newest_intact_checkpoint(tmp_path)
    assert chosen.name == "000001-step1.json"
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "000002-step2" in warning.getMessage() and reason in warning.getMessage()
    assert torch.equal(load_checkpoint(chosen)["w"], torch.ones(64))
    assert folder_bytes(tmp_path) == before  # nothing deleted, moved or rewritten


def test_all_checkpoints_damaged_is_an_error_naming_the_folder(tmp_path):
    stem = two_checkpoints(tmp_path)
    flip_bytes(stem.with_suffix(".safetensors"))
    flip_bytes(stem.with_name("000001-step1.safetensors"))
    with pytest.raises(ckpt.DamagedCheckpoint, match="all 2 checkpoints are damaged"):
        ckpt.newest_intact_checkpoint(tmp_path)


def test_the_hashes_are_those_of_the_files(tmp_path):
    import hashlib

    json_path = save_checkpoint(tmp_path, {"w": torch.arange(5.0)}, step=5)
    tensors = json_path.with_suffix(".safetensors").read_bytes()
    record = json.loads(json_path.read_text())["tensors"]
    assert record == {"sha256": hashlib.sha256(tensors).hexdigest(), "bytes": len(tensors)}
    marker = json.loads(json_path.with_suffix(".complete").read_text())
    assert marker == {"step": 5, "json_sha256": hashlib.sha256(json_path.read_bytes()).hexdigest()}


def test_a_state_without_a_required_key_is_damaged(tmp_path):
    save_checkpoint(tmp_path, {"model": {"w": torch.ones(2)}}, step=1)
    with pytest.raises(ckpt.DamagedCheckpoint, match="learner"):
        load_checkpoint(tmp_path, require=("model", "learner"))


def write_hashless(folder, state: dict, *, step: int):
    """A checkpoint as written before the hashes: no "tensors" record, the step as marker."""
    json_path = save_checkpoint(folder, state, step=step)
    document = json.loads(json_path.read_text())
    del document["tensors"]
    json_path.write_text(json.dumps(document))
    json_path.with_suffix(".complete").write_text(f"{step}\n")
    return json_path


def test_hashless_checkpoints_load_with_a_warning_and_cut_ones_are_skipped(tmp_path, caplog):
    old = write_hashless(tmp_path, {"w": torch.ones(3)}, step=1)
    assert torch.equal(load_checkpoint(old)["w"], torch.ones(3))
    assert "without verifying" in caplog.text
    newer = write_hashless(tmp_path, {"w": torch.zeros(300)}, step=2)
    cut_in_half(newer.with_suffix(".safetensors"))
    assert ckpt.newest_intact_checkpoint(tmp_path) == old
    document = json.loads(newer.read_text())  # a tensor the file does not hold
    document["state"]["w"] = {"__tensor__": "nope"}
    newer.write_text(json.dumps(document))
    newer.with_suffix(".safetensors").write_bytes(old.with_suffix(".safetensors").read_bytes())
    with pytest.raises(ckpt.DamagedCheckpoint, match="no tensor 'nope'"):
        load_checkpoint(newer)


def test_pruning_leaves_a_damaged_checkpoint_in_place(tmp_path):
    stem = two_checkpoints(tmp_path)
    flip_bytes(stem.with_suffix(".safetensors"))
    save_checkpoint(tmp_path, {"w": torch.ones(1)}, step=3)
    save_checkpoint(tmp_path, {"w": torch.ones(1)}, step=4)
    prune_checkpoints(tmp_path, keep=1)
    assert [p.stem for p in list_checkpoints(tmp_path)] == ["000002-step2", "000004-step4"]


def test_a_link_out_of_the_folder_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    save_checkpoint(outside, {"w": torch.ones(3)}, step=1)
    inside = tmp_path / "run"
    inside.mkdir()
    for p in outside.iterdir():
        (inside / p.name).symlink_to(p)
    with pytest.raises(ckpt.DamagedCheckpoint, match="link out of its folder"):
        load_checkpoint(inside)
