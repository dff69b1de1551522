"""TrackingCallback driven by a minimal fake learner: routing, failures, main process only."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from difflab.config import RunConfig, config_to_dict
from difflab.tracking.base import Tracker, make_trackers, parse_tracker_names
from difflab.tracking.local import LocalTracker
from difflab.tracking.run_folder import create_run_folder
from difflab.tracking.store import RunStore
from difflab.training.callbacks.tracking import TrackingCallback


class RecordingTracker:
    """A real Tracker that keeps every call, to check what the callback forwards."""

    name = "recording"

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def _record(self, *call) -> None:
        if call[0] == self.fail_on:
            raise RuntimeError(f"{call[0]} is broken")
        self.calls.append(call)

    def start(self) -> None:
        self._record("start")

    def log_metrics(self, metrics, *, step):
        self._record("log_metrics", metrics, step)

    def log_images(self, name, path, *, step):
        self._record("log_images", name, path, step)

    def log_artifact(self, name, path, *, kind, step):
        self._record("log_artifact", name, path, kind, step)

    def finish(self, status="finished"):
        self._record("finish", status)


def fake_learner(*, main: bool = True) -> SimpleNamespace:
    return SimpleNamespace(is_main_process=main, step=0, epoch=0, run_dir=None)


def run_fake_fit(cb: TrackingCallback, learn, *, fail: bool = False) -> None:
    """The event order of a Learner fit with two batches and one epoch."""
    cb.before_fit(learn)
    for step in (1, 2):
        cb.on_report(learn, "train/loss", 1.0 / step, step)
    cb.on_report(learn, "fid", 12.5, 2)
    cb.on_file(learn, "samples", Path("grid.png"), "image", 2)
    cb.after_epoch(learn)
    if not fail:
        cb.on_file(learn, "model", Path("model.safetensors"), "artifact", 2)
        cb.after_fit(learn)
    cb.cleanup_fit(learn)


def test_recording_tracker_meets_the_protocol():
    assert isinstance(RecordingTracker(), Tracker)


def test_callback_forwards_reports_and_files():
    tracker = RecordingTracker()
    run_fake_fit(TrackingCallback([tracker]), fake_learner())
    assert tracker.calls == [
        ("start",),
        ("log_metrics", {"train/loss": 1.0}, 1),
        ("log_metrics", {"train/loss": 0.5}, 2),
        ("log_metrics", {"fid": 12.5}, 2),
        ("log_images", "samples", Path("grid.png"), 2),
        ("log_artifact", "model", Path("model.safetensors"), "artifact", 2),
        ("finish", "finished"),
    ]


def test_fit_that_never_reaches_after_fit_is_failed():
    tracker = RecordingTracker()
    run_fake_fit(TrackingCallback([tracker]), fake_learner(), fail=True)
    assert tracker.calls[-1] == ("finish", "failed")


def test_only_the_main_process_logs():
    tracker = RecordingTracker()
    run_fake_fit(TrackingCallback([tracker]), fake_learner(main=False))
    assert tracker.calls == []


def test_failing_tracker_warns_once_and_training_goes_on(caplog):
    broken, healthy = RecordingTracker(fail_on="log_metrics"), RecordingTracker()
    cb = TrackingCallback([broken, healthy])
    with caplog.at_level(logging.WARNING):
        run_fake_fit(cb, fake_learner())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "switched off" in warnings[0].getMessage()
    assert "log_metrics is broken" in warnings[0].getMessage()
    assert broken.calls == [("start",)]  # nothing after the failure, not even finish
    assert len(healthy.calls) == 7 and healthy.calls[-1] == ("finish", "finished")


def test_callback_with_the_local_store(tmp_path):
    config = config_to_dict(RunConfig())
    run_dir = create_run_folder(tmp_path, config, dataset="fashion_mnist", preset="tiny")
    (run_dir / "grid.png").write_bytes(b"png")
    [tracker] = make_trackers("local", run_dir, config)
    assert isinstance(tracker, LocalTracker)
    cb = TrackingCallback([tracker])
    learn = fake_learner()
    cb.before_fit(learn)
    cb.on_report(learn, "train/loss", 0.25, 3)
    cb.on_file(learn, "samples", run_dir / "grid.png", "image", 3)
    cb.after_epoch(learn)
    with RunStore(tmp_path) as store:  # visible while the run is still going
        assert store.metric_series(run_dir.name, "train/loss") == [(3, 0.25)]
        assert store.get_run(run_dir.name).status == "running"
    cb.after_fit(learn)
    cb.cleanup_fit(learn)
    with RunStore(tmp_path) as store:
        assert store.get_run(run_dir.name).status == "finished"
        assert [a.path.name for a in store.artifacts(run_dir.name)] == ["grid.png"]


def test_tracker_names_are_validated():
    assert parse_tracker_names("local, wandb,local") == ["local", "wandb"]
    with pytest.raises(ValueError, match="--trackers: 'mlflow'"):
        parse_tracker_names(["mlflow"])
