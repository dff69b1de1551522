"""EMA of the weights, used for sampling and evaluation (maths in difflab.models.ema)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from torch import nn

from difflab.models.ema import ema_decay_at, ema_update
from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner


class EMACB(Callback):
    """Keeps `self.model`, an EMA copy of the (unwrapped) model, updated after every step.

    Under DDP every process holds the same weights after each step, so every process holds
    the same EMA; no communication is needed.
    """

    order = 30

    def __init__(self, decay: float = 0.999, *, warmup: float = 10.0):
        ema_decay_at(0, decay, warmup=warmup)  # validates both
        self.decay = decay
        self.warmup = warmup
        self.model: nn.Module | None = None

    def before_fit(self, learn: Learner) -> None:
        if self.model is None:
            self.model = copy_for_eval(learn.unwrapped_model())

    def after_step(self, learn: Learner) -> None:
        decay = ema_decay_at(learn.step - 1, self.decay, warmup=self.warmup)
        ema_update(self.model, learn.unwrapped_model(), decay)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict() if self.model is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("model") is not None:
            self.model.load_state_dict(state["model"])


def copy_for_eval(model: nn.Module) -> nn.Module:
    """A frozen copy in eval mode, without Accelerate's autocast wrapper around forward."""
    from accelerate.utils import extract_model_from_parallel

    twin = copy.deepcopy(model)
    # Accelerate's mixed precision replaces `forward` on the instance; on the copy we undo
    # that, so EMA weights are evaluated in the model's own precision.
    twin = extract_model_from_parallel(twin, keep_fp32_wrapper=False)
    twin.eval()
    twin.requires_grad_(False)
    return twin
