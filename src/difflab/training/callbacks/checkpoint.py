"""Resumable checkpoints: every N steps, at each epoch end, and on SIGTERM/SIGINT.

On a signal the run stops at the next batch boundary (a consistent state), writes a
checkpoint and returns from `fit` normally; `stopped_by_signal` then holds the signal number.
Saving is atomic (see difflab.io.checkpoint); only the main process writes.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from difflab.io.checkpoint import prune_checkpoints, remove_incomplete, save_checkpoint
from difflab.training.callback import Callback, CancelFitException

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

log = logging.getLogger("difflab.training")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class CheckpointCB(Callback):
    """Writes checkpoints to `folder` (default: `<run_dir>/checkpoints`), keeping the last `keep`.

    `every`: steps between checkpoints (0: only at epoch ends and on signals).
    """

    order = 100

    def __init__(
        self,
        *,
        every: int = 500,
        keep: int = 2,
        folder: str | Path | None = None,
        handle_signals: bool = True,
    ):
        if every < 0 or keep < 1:
            raise ValueError(f"need every >= 0 and keep >= 1, got every={every}, keep={keep}")
        self.every = every
        self.keep = keep
        self.folder = Path(folder) if folder is not None else None
        self.handle_signals = handle_signals
        self.stopped_by_signal: int | None = None
        self.last_path: Path | None = None
        self._pending: int | None = None
        self._saved_step: int | None = None
        self._previous: dict[int, Any] = {}

    def before_fit(self, learn: Learner) -> None:
        if self.folder is None:
            if learn.run_dir is None:
                raise ValueError(
                    "CheckpointCB needs a folder: pass run_dir to the Learner "
                    "or folder= to CheckpointCB"
                )
            self.folder = learn.run_dir / "checkpoints"
        self.stopped_by_signal = self._pending = None
        if learn.is_main_process:
            for path in remove_incomplete(self.folder):
                log.warning("removed %s (left by an interrupted save)", path)
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._pending is not None:  # asked twice: stop without waiting
            raise KeyboardInterrupt
        self._pending = signum
        log.warning("received signal %d: saving a checkpoint at the next batch end", signum)

    def after_batch(self, learn: Learner) -> None:
        if not learn.training:
            return
        if self._signal_arrived(learn):
            self._stop(learn, epoch_done=False)
        if self.every and learn.step % self.every == 0 and learn.step != self._saved_step:
            self.save(learn, epoch_done=False)

    def after_epoch(self, learn: Learner) -> None:
        if learn.is_last_phase:
            self.save(learn, epoch_done=True)
            if self._signal_arrived(learn):
                self._stop(learn, epoch_done=None)

    def cleanup_fit(self, learn: Learner) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def save(self, learn: Learner, *, epoch_done: bool) -> Path | None:
        """Write a checkpoint now (all processes call this; the main one writes)."""
        state = learn.state_dict(epoch_done=epoch_done)
        self._saved_step = learn.step
        path = None
        if learn.is_main_process:
            path = save_checkpoint(self.folder, state, step=learn.step)
            prune_checkpoints(self.folder, keep=self.keep)
            self.last_path = path
            learn.report_file("checkpoint", path, "artifact")
        if learn.accelerator is not None:
            learn.accelerator.wait_for_everyone()
        return path

    def _signal_arrived(self, learn: Learner) -> bool:
        pending = self._pending is not None
        if learn.num_processes > 1:  # every process must stop at the same batch
            flag = torch.tensor([float(pending)], device=learn.accelerator.device)
            pending = bool(learn.accelerator.reduce(flag, "max").item() > 0)
        return pending

    def _stop(self, learn: Learner, *, epoch_done: bool | None) -> None:
        if epoch_done is not None:
            self.save(learn, epoch_done=epoch_done)
        self.stopped_by_signal = self._pending or signal.SIGTERM
        if learn.is_main_process:
            log.warning(
                "stopped by signal %d; resume from %s", self.stopped_by_signal, self.last_path
            )
        raise CancelFitException
