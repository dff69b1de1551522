"""Guard: a non-finite loss or gradient never reaches the weights."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from difflab.training.callback import Callback, CancelBatchException, CancelFitException

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

log = logging.getLogger("difflab.training")


class NonFiniteGuardCB(Callback):
    """Skips the optimiser step when the loss or a gradient is inf/NaN; stops after
    `max_nonfinite` skips in a row (the last checkpoint, written before, stays as it was);
    `stopped` then says so, because a cancelled fit returns like a finished one.

    Under DDP the decision is all-reduced so that every process skips the same steps. With
    an fp16 grad scaler, overflowing gradients are the scaler's job (it skips and lowers the
    scale), so only the loss is checked.
    """

    order = 20

    def __init__(self, max_nonfinite: int = 5):
        if max_nonfinite < 1:
            raise ValueError(f"max_nonfinite must be >= 1, got {max_nonfinite}")
        self.max_nonfinite = max_nonfinite
        self.in_a_row = 0
        self.skipped = 0
        self.stopped = False
        self._loss_bad = False

    def before_fit(self, learn: Learner) -> None:
        self.stopped = False

    def after_loss(self, learn: Learner) -> None:
        if not learn.training:
            return
        self._loss_bad = not bool(torch.isfinite(learn.loss.detach()).all())
        if self._loss_bad and learn.num_processes == 1:  # alone: skip now, save the backward
            self._skip(learn, f"loss is {learn.loss.item()}")

    def after_backward(self, learn: Learner) -> None:
        grads = [p.grad for p in learn.model.parameters() if p.grad is not None]
        check_grads = learn.accelerator is None or learn.accelerator.scaler is None
        grad_bad = check_grads and bool(grads) and not _finite(grads)
        flags = torch.tensor([float(self._loss_bad), float(grad_bad)])
        if learn.num_processes > 1:
            flags = learn.accelerator.reduce(flags.to(learn.accelerator.device), "max").cpu()
        if flags[0] > 0:
            self._skip(learn, "loss is not finite (on at least one process)")
        if flags[1] > 0:
            self._skip(learn, "a gradient is not finite")
        self.in_a_row = 0

    def _skip(self, learn: Learner, cause: str) -> None:
        self.in_a_row += 1
        self.skipped += 1
        log.warning(
            "step %d (epoch %d): skipped the optimiser step, %s (%d in a row)",
            learn.step,
            learn.epoch,
            cause,
            self.in_a_row,
        )
        if self.in_a_row >= self.max_nonfinite:
            log.error(
                "stopping: %d non-finite steps in a row; the last checkpoint was written "
                "before them - resume from it with a lower learning rate",
                self.in_a_row,
            )
            self.stopped = True
            raise CancelFitException
        raise CancelBatchException

    def state_dict(self) -> dict[str, Any]:
        return {"in_a_row": self.in_a_row, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.in_a_row, self.skipped = state["in_a_row"], state["skipped"]


def _finite(grads: list[torch.Tensor]) -> bool:
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
