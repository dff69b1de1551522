"""W&B tracker, offline: the values are read back from the run's own .wandb record file."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from difflab.config import RunConfig, config_to_dict
from difflab.tracking.base import make_trackers
from difflab.training.callbacks.tracking import TrackingCallback

pytest.importorskip("wandb", reason="wandb is an optional extra (pip install difflab[wandb])")

_BLOCK, _HEADER = 32768, 7


def read_wandb_records(path: Path) -> list:
    """Records of a .wandb file: a 7-byte ':W&B' header, then LevelDB-log framed protobufs
    (32 KiB blocks; each chunk: crc32c(4) length(2) type(1: full, 2: first, 3: middle,
    4: last)). Written out here so the test relies on the file format, not on a wandb helper.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B record file"
    records, pos, pending = [], _HEADER, b""
    while pos + _HEADER <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _HEADER:  # the block's tail is padding
            pos += room
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        if pos + 7 + length > len(data):  # still being written
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def read_finished_records(path: Path, *, timeout: float = 20.0) -> list:
    """wandb-core may still be writing the file when run.finish() returns: wait for `exit`."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_records(path)
        if any(r.HasField("exit") for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def history_row(history) -> dict:
    """{key: value} of one history record; nested keys (an image's fields) become dicts."""
    row: dict = {}
    for item in history.item:
        *parents, leaf = [item.key] if item.key else list(item.nested_key)
        node = row
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = json.loads(item.value_json)
    return row


def test_wandb_offline_run_holds_config_metrics_images_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb_dir").mkdir()
    run_dir = tmp_path / "00001-demo"
    (run_dir / "samples").mkdir(parents=True)
    config = config_to_dict(RunConfig())
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "environment.json").write_text(json.dumps({"git_commit": "abc123"}))
    (run_dir / "code.diff").write_text("--- a/x.py\n+++ b/x.py\n")
    grid = run_dir / "samples" / "epoch_001.png"
    Image.new("L", (56, 28), 200).save(grid)
    weights = run_dir / "model.json"  # reported like a checkpoint: by its .json
    weights.write_text("{}")
    (run_dir / "model.safetensors").write_bytes(b"weights")

    [tracker] = make_trackers(["wandb"], run_dir, config)
    cb, learn = TrackingCallback([tracker]), SimpleNamespace(is_main_process=True)
    cb.before_fit(learn)
    for step in (1, 2, 3):
        cb.on_report(learn, "train/loss", 1.0 / step, step)
    cb.on_report(learn, "fid", 42.5, 3)
    cb.on_file(learn, "samples", grid, "image", 3)
    cb.on_file(learn, "model", weights, "artifact", 3)
    cb.after_fit(learn)
    cb.cleanup_fit(learn)
    assert cb.active == []  # finished, not switched off by an error

    [path] = (tmp_path / "wandb_dir").glob("wandb/offline-run-*/run-*.wandb")
    records = read_finished_records(path)
    kinds = [r.WhichOneof("record_type") for r in records]
    config_items = {
        i.key: json.loads(i.value_json)
        for r in records
        if r.HasField("run")
        for i in r.run.config.update
    }
    assert config_items["train"]["lr"] == config["train"]["lr"]
    assert config_items["git_commit"] == "abc123"
    history = [history_row(r.history) for r in records if r.HasField("history")]
    losses = [(h["trainer/step"], h["train/loss"]) for h in history if "train/loss" in h]
    assert losses == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert [(h["trainer/step"], h["fid"]) for h in history if "fid" in h] == [(3, 42.5)]
    [image] = [h["samples"] for h in history if "samples" in h]
    assert image["_type"] == "image-file" and (image["width"], image["height"]) == (56, 28)
    with Image.open(path.parent / "files" / image["path"]) as logged:
        assert logged.size == (56, 28)
    artifacts = {r.artifact.type: r.artifact for r in records if r.HasField("artifact")}
    assert set(artifacts) == {"code", "model"}
    assert {e.path for e in artifacts["code"].manifest.contents} == {
        "code.diff",
        "environment.json",
    }
    assert sorted(e.path for e in artifacts["model"].manifest.contents) == [
        "model.json",
        "model.safetensors",
    ]
    [exit_record] = [r.exit for r in records if r.HasField("exit")]
    assert exit_record.exit_code == 0 and kinds.count("run") == 1
