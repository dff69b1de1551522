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


def _tiny_fit(run_dir: Path, *, fail_at: int | None = None) -> None:
    import torch

    from difflab.training import Learner
    from difflab.training.callbacks import CheckpointCB, MetricsCB

    torch.manual_seed(0)
    batches = [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(3)]
    calls = []

    def objective(model, batch):
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("boom")
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y)

    config = config_to_dict(RunConfig())
    cbs = [
        MetricsCB(report_every=1),
        CheckpointCB(every=0, handle_signals=False),
        TrackingCallback(make_trackers("local", run_dir, config)),
    ]
    learn = Learner(
        torch.nn.Linear(2, 1),
        batches,
        objective,
        valid_data=batches[:1],
        lr=0.1,
        callbacks=cbs,
        run_dir=run_dir,
    )
    learn.fit(2)


def test_real_learner_feeds_the_local_store(tmp_path):
    run_dir = create_run_folder(tmp_path, config_to_dict(RunConfig()), dataset="d", preset="p")
    _tiny_fit(run_dir)
    with RunStore(tmp_path) as store:
        run = store.get_run(run_dir.name)
        assert run.status == "finished"
        assert [s for s, _ in store.metric_series(run.name, "train/loss")] == list(range(1, 7))
        assert [s for s, _ in store.metric_series(run.name, "epoch/valid_loss")] == [3, 6]
        checkpoints = store.artifacts(run.name, kind="artifact")
        assert checkpoints and all(a.path.is_file() or a.step < 6 for a in checkpoints)

    failed = create_run_folder(tmp_path, config_to_dict(RunConfig()), dataset="d", preset="p")
    with pytest.raises(RuntimeError, match="boom"):
        _tiny_fit(failed, fail_at=2)
    with RunStore(tmp_path) as store:
        assert store.get_run(failed.name).status == "failed"
        assert len(store.metric_series(failed.name, "train/loss")) == 1  # flushed on failure
