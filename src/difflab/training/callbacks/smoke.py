"""A smoke test of the whole loop: stop after the first training batch (miniai's SingleBatchCB)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from difflab.training.callback import Callback, CancelFitException

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner


class SingleBatchCB(Callback):
    """Runs one batch through every event (including its step), then ends the fit."""

    order = 1000

    def after_batch(self, learn: Learner) -> None:
        raise CancelFitException
