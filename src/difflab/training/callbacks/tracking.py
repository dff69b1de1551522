"""Feeds reported values to experiment trackers (local run store, W&B, TensorBoard).

One callback, any number of trackers: `learn.report(name, value)` becomes `log_metrics`,
`learn.report_file(name, path, kind)` becomes `log_images` or `log_artifact`. A tracker that
raises is logged once and switched off; training goes on. Only the main process logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from difflab.tracking.base import Tracker
from difflab.training.callback import Callback

log = logging.getLogger(__name__)


class TrackingCallback(Callback):
    """Opens the trackers before fit, forwards reports, closes them with finished/failed."""

    order = 90  # after the callbacks that produce values in the same event

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)
        self._active: list[Tracker] = []
        self._started = False
        self._fit_ended = False

    def before_fit(self, learn: Any) -> None:
        self._started, self._fit_ended = False, False
        self._start(learn)

    def on_report(self, learn: Any, name: str, value: float, step: int) -> None:
        self._start(learn)
        self._call("log_metrics", lambda t: t.log_metrics({name: float(value)}, step=step))

    def on_file(self, learn: Any, name: str, path: Path, kind: str, step: int) -> None:
        self._start(learn)
        if kind == "image":
            self._call("log_images", lambda t: t.log_images(name, Path(path), step=step))
        else:
            self._call(
                "log_artifact", lambda t: t.log_artifact(name, Path(path), kind=kind, step=step)
            )

    def after_epoch(self, learn: Any) -> None:
        """Push buffered values out, so `difflab runs` and the board see every epoch."""
        self._call("flush", lambda t: getattr(t, "flush", lambda: None)())

    def after_fit(self, learn: Any) -> None:
        self._fit_ended = True

    def cleanup_fit(self, learn: Any) -> None:
        """Always runs: a fit that never reached after_fit (an error, a cancel) failed."""
        status = "finished" if self._fit_ended else "failed"
        self._call("finish", lambda t: t.finish(status))
        self._active = []

    def _start(self, learn: Any) -> None:
        """Start once per fit, at the first event (a report may come before our before_fit)."""
        if self._started:
            return
        self._started = True
        self._active = list(self.trackers) if learn.is_main_process else []
        self._call("start", lambda t: t.start())

    def _call(self, what: str, fn: Callable[[Tracker], None]) -> None:
        for tracker in list(self._active):
            try:
                fn(tracker)
            except Exception as err:  # a tracker must never stop training
                self._active.remove(tracker)
                log.warning(
                    "tracker %r failed in %s (%s: %s); it is switched off, training goes on",
                    getattr(tracker, "name", tracker),
                    what,
                    type(err).__name__,
                    err,
                )

    @property
    def active(self) -> list[Tracker]:
        """The trackers still logging (a failed one drops out)."""
        return list(self._active)
