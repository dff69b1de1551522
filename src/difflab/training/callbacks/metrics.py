"""Running means of the loss: `train/loss` every few steps, `epoch/train_loss` and
`epoch/valid_loss` at each epoch end (averaged over all processes under DDP)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner


def batch_size_of(batch: Any) -> int:
    """Number of samples in a batch: the first dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, tuple | list) and batch:
        return batch_size_of(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_size_of(next(iter(batch.values())))
    return 1


class MetricsCB(Callback):
    """Accumulates loss x samples on the device (no per-batch sync) and reports means.

    Sums are reset after each epoch's report, so a checkpoint taken mid-epoch carries the
    partial sums and a resumed run reports the same epoch mean.
    """

    order = 0

    def __init__(self, *, report_every: int = 10):
        if report_every < 1:
            raise ValueError(f"report_every must be >= 1, got {report_every}")
        self.report_every = report_every
        self._sum: Any = 0.0  # sum of loss x samples in this phase (a device tensor once used)
        self._count = 0
        self._window: list[Any] = [0.0, 0]

    def after_batch(self, learn: Learner) -> None:
        n = batch_size_of(learn.batch)
        weighted = learn.loss.detach().float() * n
        self._sum = self._sum + weighted
        self._count += n
        if learn.training:
            self._window = [self._window[0] + weighted, self._window[1] + n]
            if learn.step % self.report_every == 0:
                learn.report("train/loss", float(self._window[0]) / self._window[1])
                self._window = [0.0, 0]

    def after_epoch(self, learn: Learner) -> None:
        mean = torch.as_tensor(self._sum / max(self._count, 1), dtype=torch.float32)
        if learn.num_processes > 1:
            mean = learn.accelerator.reduce(mean.to(learn.accelerator.device), "mean")
        learn.report("epoch/train_loss" if learn.training else "epoch/valid_loss", float(mean))
        self._sum, self._count, self._window = 0.0, 0, [0.0, 0]

    def state_dict(self) -> dict[str, Any]:
        return {"sum": float(self._sum), "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sum, self._count = state["sum"], state["count"]
