"""Learning-rate finder (Smith 2017, "Cyclical learning rates", section 3.3; fast.ai's lr_find).

The lr grows exponentially from `start_lr` to `end_lr` over `n_steps` batches while the
smoothed loss (a bias-corrected exponential moving average, as Adam's moments) is recorded;
the search stops early when the loss explodes (the smoothed loss rises above `stop_factor` x
its minimum, or the loss becomes non-finite). The suggestion is `suggest_lr`: the lr at the
minimum of the smoothed loss, divided by 10.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from difflab.training.callback import Callback, CancelEpochException, CancelFitException

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner, Objective, OptimizerFactory


@dataclass(frozen=True)
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # bias-corrected exponential moving average of the loss
    suggestion: float  # suggest_lr: lr at the minimum smoothed loss, divided by 10


# --- Suggestion rule: fast.ai's "minimum" rule (lr_find's lr_min): the lr at the minimum of the
# --- smoothed loss, divided by 10, a step back from where the loss stops falling.
def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The lr at the minimum of `losses` (the first, on ties) divided by 10."""
    if not losses:
        raise ValueError("the lr finder recorded no finite loss; lower start_lr")
    if len(lrs) < len(losses):
        raise ValueError(f"{len(losses)} losses but only {len(lrs)} learning rates")
    best = min(range(len(losses)), key=losses.__getitem__)
    return lrs[best] / 10.0


class LRFinderCB(Callback):
    """Drives the lr of every param group and records (lr, smoothed loss); skips validation."""

    order = -10

    def __init__(
        self,
        *,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        n_steps: int = 100,
        stop_factor: float = 4.0,
        smoothing: float = 0.9,
    ):
        if not 0 < start_lr < end_lr or n_steps < 2:
            raise ValueError("need 0 < start_lr < end_lr and n_steps >= 2")
        self.start_lr, self.end_lr, self.n_steps = start_lr, end_lr, n_steps
        self.stop_factor, self.smoothing = stop_factor, smoothing
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self._avg = 0.0

    def before_epoch(self, learn: Learner) -> None:
        if not learn.training:
            raise CancelEpochException

    def before_batch(self, learn: Learner) -> None:
        i = len(self.lrs)
        lr = self.start_lr * (self.end_lr / self.start_lr) ** (i / (self.n_steps - 1))
        for group in learn.optimizer.param_groups:
            group["lr"] = lr

    def after_loss(self, learn: Learner) -> None:
        loss = float(learn.loss.detach())
        self.lrs.append(learn.optimizer.param_groups[0]["lr"])
        if not math.isfinite(loss):
            raise CancelFitException
        self._avg = self.smoothing * self._avg + (1 - self.smoothing) * loss
        smoothed = self._avg / (1 - self.smoothing ** len(self.lrs))
        self.losses.append(smoothed)
        if smoothed > self.stop_factor * min(self.losses) or len(self.lrs) >= self.n_steps:
            raise CancelFitException

    def result(self) -> LRFindResult:
        lrs = list(self.lrs[: len(self.losses)])
        return LRFindResult(lrs, list(self.losses), suggest_lr(lrs, self.losses))


def lr_find(
    model: Any,
    train_data: Iterable,
    objective: Objective,
    *,
    optimizer: OptimizerFactory | None = None,
    callbacks: Sequence[Callback] = (),
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    n_steps: int = 100,
    stop_factor: float = 4.0,
) -> LRFindResult:
    """Run the lr range test on a copy of `model` (the model itself is not changed).

    `callbacks`: e.g. [AccelerateCB()] for the device; schedules and checkpoints do not belong.
    """
    from difflab.training.learner import Learner

    finder = LRFinderCB(start_lr=start_lr, end_lr=end_lr, n_steps=n_steps, stop_factor=stop_factor)
    learn = Learner(
        copy.deepcopy(model),
        train_data,
        objective,
        lr=start_lr,
        optimizer=optimizer,
        callbacks=[*callbacks, finder],
    )
    learn.fit(max(1, math.ceil(n_steps / max(1, len(train_data)))))
    return finder.result()
