"""Capture the output of named layers during training (activation statistics, debugging)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner


class ActivationHooksCB(Callback):
    """Keeps the last output of each named submodule in `outputs[name]` (detached) and reports
    `activations/<name>/mean` and `/std` every `every` training steps."""

    order = 50

    def __init__(self, names: Sequence[str], *, every: int = 1):
        if not names:
            raise ValueError("ActivationHooksCB needs at least one layer name")
        self.names = tuple(names)
        self.every = every
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def before_fit(self, learn: Learner) -> None:
        model = learn.unwrapped_model()
        known = [name for name, _ in model.named_modules() if name]
        for name in self.names:
            if name not in known:
                raise ValueError(f"no layer named {name!r}; the model has: {', '.join(known)}")
            module = model.get_submodule(name)
            self._handles.append(module.register_forward_hook(self._make_hook(name)))

    def _make_hook(self, name: str):
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            tensor = output[0] if isinstance(output, tuple | list) else output
            self.outputs[name] = tensor.detach()

        return hook

    def after_batch(self, learn: Learner) -> None:
        if learn.training and learn.step % self.every == 0:
            for name, out in self.outputs.items():
                out = out.float()
                learn.report(f"activations/{name}/mean", float(out.mean()))
                learn.report(f"activations/{name}/std", float(out.std()))

    def cleanup_fit(self, learn: Learner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
