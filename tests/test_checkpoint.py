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
