"""Learning-rate finder (Smith 2017, "Cyclical learning rates", section 3.3; fast.ai's lr_find).

The lr grows exponentially from `start_lr` to `end_lr` over `n_steps` batches while the
smoothed loss is recorded; the search stops early when the loss explodes (rises above
`stop_factor` x its minimum or becomes non-finite).
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
    suggestion: float  # lr at the minimum smoothed loss, divided by 10 (fast.ai's rule)


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
        if not self.losses:
            raise ValueError("the lr finder recorded no finite loss; lower start_lr")
        best = min(range(len(self.losses)), key=self.losses.__getitem__)
        return LRFindResult(
            list(self.lrs[: len(self.losses)]), list(self.losses), self.lrs[best] / 10.0
        )


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
