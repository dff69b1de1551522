"""Gradient-norm clipping (Pascanu et al. 2013), after backward and before the step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner


class GradClipCB(Callback):
    """Rescales gradients so that their total L2 norm is at most `max_norm`."""

    order = 10

    def __init__(self, max_norm: float = 1.0):
        if max_norm <= 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        self.max_norm = max_norm

    def after_backward(self, learn: Learner) -> None:
        params = learn.model.parameters()
        if learn.accelerator is not None:  # unscales fp16 gradients first
            learn.accelerator.clip_grad_norm_(params, self.max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm)
