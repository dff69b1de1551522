"""The contract between the Learner and its callbacks (after fast.ai's miniai, without magic).

A callback is a small object with an `order` (lower runs first) and any of the event methods
below; each receives the Learner. Events, by loop level:

    before_fit  before_epoch  before_batch  after_loss  after_backward  after_step
    after_batch  after_epoch  after_fit,  and cleanup_fit / cleanup_epoch / cleanup_batch
    (always called, like `finally`).

Values flow through a small reporting bus, so code that produces a number never knows who
consumes it: `learn.report(name, value)` calls `on_report` on every callback, and
`learn.report_file(name, path, kind)` calls `on_file` (kind: "image" or "artifact").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

EVENTS = (
    "before_fit",
    "before_epoch",
    "before_batch",
    "after_loss",
    "after_backward",
    "after_step",
    "after_batch",
    "after_epoch",
    "after_fit",
    "cleanup_batch",
    "cleanup_epoch",
    "cleanup_fit",
)

FileKind = Literal["image", "artifact"]


class CancelBatchException(Exception):
    """Skip the rest of this batch (its step included); the loop goes on with the next."""


class CancelEpochException(Exception):
    """End this epoch (this phase) now; the loop goes on with the next."""


class CancelFitException(Exception):
    """End training now; cleanup events still run."""


class Callback:
    """Base class: override the events you need. `order` sorts callbacks (lower first)."""

    order: int = 0

    def on_report(self, learn: Learner, name: str, value: float, step: int) -> None:
        """A scalar was reported (e.g. "train/loss", "epoch/valid_loss", "fid")."""

    def on_file(self, learn: Learner, name: str, path: Path, kind: FileKind, step: int) -> None:
        """A file was produced (a sample grid image, a checkpoint artifact)."""

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints (exact resume): nested dicts/lists/tuples of numbers,
        strings and tensors (tensors go to safetensors, the rest to JSON; never pickle)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
