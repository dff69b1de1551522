"""The standard set of callbacks the CLI trains with, and helpers to find one of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from torch import nn

from difflab.training.callback import Callback
from difflab.training.callbacks import (
    EMACB,
    AccelerateCB,
    CheckpointCB,
    GradClipCB,
    LRScheduleCB,
    MetricsCB,
    NonFiniteGuardCB,
    ProgressCB,
)
from difflab.training.callbacks.device import MixedPrecision
from difflab.training.callbacks.schedule import ScheduleName

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

C = TypeVar("C", bound=Callback)


def standard_callbacks(
    *,
    mixed_precision: MixedPrecision = "no",
    lr_schedule: ScheduleName = "onecycle",
    warmup: float = 0.1,
    grad_clip: float | None = 1.0,
    ema_decay: float = 0.999,
    checkpoint_every: int = 500,
    max_nonfinite: int = 5,
    progress: bool = True,
    run_dir: str | Path | None = None,
    cpu: bool = False,
) -> list[Callback]:
    """Device/precision, lr schedule, metrics, clipping, non-finite guard, EMA (ema_decay > 0),
    progress and checkpoints (into `<run_dir>/checkpoints`, else the Learner's run_dir)."""
    callbacks: list[Callback] = [
        AccelerateCB(mixed_precision=mixed_precision, cpu=cpu),
        MetricsCB(),
        NonFiniteGuardCB(max_nonfinite),
    ]
    if lr_schedule != "constant":
        callbacks.append(LRScheduleCB(lr_schedule, warmup=warmup))
    if grad_clip is not None:
        callbacks.append(GradClipCB(grad_clip))
    if ema_decay > 0:
        callbacks.append(EMACB(ema_decay))
    if progress:
        callbacks.append(ProgressCB())
    folder = Path(run_dir) / "checkpoints" if run_dir is not None else None
    callbacks.append(CheckpointCB(every=checkpoint_every, folder=folder))
    return callbacks


def find_callback(learn: Learner, kind: type[C]) -> C | None:
    """The first callback of class `kind` (or a subclass), or None."""
    return next((cb for cb in learn.callbacks if isinstance(cb, kind)), None)


def eval_model(learn: Learner) -> nn.Module:
    """The weights to sample and evaluate with: the EMA copy when there is one."""
    ema = find_callback(learn, EMACB)
    if ema is not None and ema.model is not None:
        return ema.model
    return learn.unwrapped_model()


def stopped_by_signal(learn: Learner) -> int | None:
    """The signal (SIGTERM/SIGINT) that ended the last fit early, after its checkpoint; else None.

    A CLI should then skip the "training finished" work and exit 0 with a resume hint.
    """
    checkpoints = find_callback(learn, CheckpointCB)
    return None if checkpoints is None else checkpoints.stopped_by_signal


def stopped_by_nonfinite(learn: Learner) -> bool:
    """True when the last fit was cancelled by the non-finite guard (no model was trained)."""
    guard = find_callback(learn, NonFiniteGuardCB)
    return guard is not None and guard.stopped


def last_checkpoint(learn: Learner) -> Path | None:
    """The newest complete checkpoint of the run (this fit's or an earlier one's), or None."""
    from difflab.io.checkpoint import list_checkpoints

    checkpoints = find_callback(learn, CheckpointCB)
    if checkpoints is None or checkpoints.folder is None:
        return None
    found = list_checkpoints(checkpoints.folder)
    return found[-1] if found else None
