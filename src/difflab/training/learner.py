"""The generic training loop: a Learner with ordered callbacks (after fast.ai's miniai).

The Learner knows nothing about diffusion. `objective(model, batch) -> scalar loss` says how a
batch becomes a loss; callbacks (device, precision, schedules, EMA, checkpoints...) hook into
the events of callback.py. Everything a callback may touch is a plain public attribute:
model, optimizer, epoch, step, batch, loss, training, accelerator, is_main_process, run_dir.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from difflab.training.callback import (
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    FileKind,
)
from difflab.training.rng import (
    gather_torch_rng,
    get_rng_state,
    set_rng_state,
    set_torch_rng_of_rank,
)

log = logging.getLogger("difflab.training")

Objective = Callable[[nn.Module, Any], torch.Tensor]
OptimizerFactory = Callable[..., torch.optim.Optimizer]
# What `load_state_dict` needs from a checkpoint (one without them is damaged, not loadable).
STATE_KEYS = ("learner", "model", "optimizer", "rng", "data", "callbacks")


class Learner:
    """Trains `model` on `train_data` by minimising `objective(model, batch)`.

    `optimizer` is a factory called as `optimizer(params, lr=lr)` (default: AdamW).
    `train_data`/`valid_data` are iterables of batches; `set_epoch(e)` and
    `state_dict()`/`load_state_dict()` are used when they exist (exact resume).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Iterable,
        objective: Objective,
        *,
        valid_data: Iterable | None = None,
        lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        callbacks: Sequence[Callback] = (),
        run_dir: str | Path | None = None,
        config: dict[str, Any] | None = None,
    ):
        if not callable(objective):
            raise ValueError("objective must be a callable objective(model, batch) -> loss")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.model = model
        self.train_data = train_data
        self.valid_data = valid_data
        self.objective = objective
        self.lr = lr
        self.make_optimizer = optimizer or partial(torch.optim.AdamW)
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)  # stable: ties keep order
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.config = dict(config or {})
        self.optimizer: torch.optim.Optimizer | None = None
        self.accelerator = None  # set by AccelerateCB; None means plain PyTorch on CPU
        self.n_epochs = 0
        self.epoch = 0
        self.step = 0  # optimiser steps taken, over all fits
        self.batch: Any = None
        self.loss: torch.Tensor | None = None
        self.training = False
        # Set by a callback (e.g. a wall-clock budget) to end the fit normally after the
        # current batch: the epoch's validation and after_fit still run, unlike CancelFit.
        self.stop_requested = False
        self._start_epoch = 0
        self._resume_data = False  # first epoch continues the restored data order
        self._resume_train_done = False  # ...whose training phase had already ended

    # --- facts about the run ---

    @property
    def is_main_process(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def num_processes(self) -> int:
        return 1 if self.accelerator is None else self.accelerator.num_processes

    @property
    def total_steps(self) -> int:
        """Optimiser steps in this fit (for schedules): epochs x batches per epoch."""
        return self.n_epochs * len(self.train_data)

    @property
    def is_last_phase(self) -> bool:
        """True in the phase that ends an epoch (validation, or training without it)."""
        return not self.training or self.valid_data is None

    def unwrapped_model(self) -> nn.Module:
        """The model without distribution wrappers (what gets saved, EMA'd, sampled)."""
        if self.accelerator is None:
            return self.model
        return self.accelerator.unwrap_model(self.model)

    # --- the report bus ---

    def report(self, name: str, value: float) -> None:
        """Send a scalar to every callback's `on_report` (main process only)."""
        if self.is_main_process:
            for cb in self.callbacks:
                cb.on_report(self, name, float(value), self.step)

    def report_file(self, name: str, path: str | Path, kind: FileKind) -> None:
        """Announce a produced file to every callback's `on_file` (main process only)."""
        if self.is_main_process:
            for cb in self.callbacks:
                cb.on_file(self, name, Path(path), kind, self.step)

    # --- the loop ---

    def fit(self, epochs: int, *, resume: str | Path | None = None) -> None:
        """Train for `epochs` epochs (counted from 0); `resume`: a checkpoint or run folder."""
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.n_epochs = epochs
        self.stop_requested = False
        self._start_epoch, self._resume_data, self._resume_train_done = 0, False, False
        if self.optimizer is None:
            self.optimizer = self.make_optimizer(self.model.parameters(), lr=self.lr)
        # read and checked before any callback starts: a refused checkpoint changes no file
        checkpoint = self.read_checkpoint(resume) if resume is not None else None
        try:
            self.event("before_fit")
            if checkpoint is not None:
                self.load_state_dict(checkpoint[1])
                log.info(
                    "resumed from %s (epoch %d, step %d)", checkpoint[0], self.epoch, self.step
                )
            for epoch in range(self._start_epoch, epochs):
                self.epoch = epoch
                self._run_epoch()
                if self.stop_requested:
                    break
            self.event("after_fit")
        except CancelFitException:
            pass
        finally:
            self.event("cleanup_fit")

    def _run_epoch(self) -> None:
        data_set_epoch = getattr(self.train_data, "set_epoch", None)
        if data_set_epoch is not None and not self._resume_data:
            data_set_epoch(self.epoch)
        # A checkpoint taken after the epoch's last batch resumes straight into validation
        # (the loader has moved on to the next epoch already).
        train_data = () if self._resume_train_done else self.train_data
        self._resume_data = self._resume_train_done = False
        self._run_phase(train_data, training=True)
        if self.valid_data is not None:
            self._run_phase(self.valid_data, training=False)

    def _run_phase(self, data: Iterable, *, training: bool) -> None:
        self.training = training
        self.model.train(training)
        with torch.set_grad_enabled(training):
            try:
                self.event("before_epoch")
                for self.batch in data:
                    self._run_batch()
                    if self.stop_requested and training:
                        break
                self.event("after_epoch")
            except CancelEpochException:
                pass
            finally:
                self.event("cleanup_epoch")

    def _run_batch(self) -> None:
        try:
            self.event("before_batch")
            self.loss = self.objective(self.model, self.batch)
            self.event("after_loss")
            if self.training:
                self._optimise()
            self.event("after_batch")
        except CancelBatchException:
            pass
        finally:
            self.event("cleanup_batch")

    def _optimise(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.accelerator is not None:
            self.accelerator.backward(self.loss)  # scales fp16 losses, syncs DDP gradients
        else:
            self.loss.backward()
        self.event("after_backward")
        self.optimizer.step()
        if not getattr(self.optimizer, "step_was_skipped", False):  # fp16 scaler overflow
            self.step += 1
        self.event("after_step")

    def event(self, name: str) -> None:
        """Call `name` on every callback that defines it, in order."""
        for cb in self.callbacks:
            method = getattr(cb, name, None)
            if method is not None:
                method(self)

    # --- checkpoints ---

    def state_dict(self, *, epoch_done: bool) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, RNGs, data order, callbacks.

        `epoch_done`: the current epoch is finished (resume starts the next one), else the
        run is inside the training phase of `epoch` (resume continues its data order).
        """
        data_state = getattr(self.train_data, "state_dict", None)
        return {
            "learner": {
                "epoch": self.epoch,
                "step": self.step,
                "epoch_done": epoch_done,
                "n_epochs": self.n_epochs,
            },
            "model": self.unwrapped_model().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": get_rng_state(),
            # numpy/python/CUDA generators are restored from the main process's state
            "rng_per_rank": gather_torch_rng(self.accelerator) if self.num_processes > 1 else [],
            "data": data_state() if data_state is not None else None,
            "callbacks": {key: cb.state_dict() for key, cb in self._callback_keys()},
            "config": self.config,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; the next `fit` epoch loop continues from it."""
        self.unwrapped_model().load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["data"] is not None:
            self.train_data.load_state_dict(state["data"])
        saved = state["callbacks"]
        for key, cb in self._callback_keys():
            if key in saved:
                cb.load_state_dict(saved[key])
        info = state["learner"]
        self.step = info["step"]
        self.epoch = info["epoch"]
        self._start_epoch = info["epoch"] + 1 if info["epoch_done"] else info["epoch"]
        self._resume_data = not info["epoch_done"]
        data_epoch = (state["data"] or {}).get("epoch", self.epoch)
        self._resume_train_done = self._resume_data and data_epoch > self.epoch
        set_rng_state(state["rng"])  # last: nothing above may consume randomness
        if self.num_processes > 1:
            set_torch_rng_of_rank(state.get("rng_per_rank", []), self.accelerator.process_index)

    def read_checkpoint(self, path: str | Path) -> tuple[Path, dict[str, Any]]:
        """(its .json path, state) of a checkpoint file, or of the newest intact one of a
        run/checkpoints folder, once its network tensors are known to fit this network.

        A damaged newer checkpoint of a folder is skipped with a warning (see
        difflab.io.checkpoint); a damaged file given by name is an error, and so is one whose
        hashes agree but whose tensors do not fit (`DamagedCheckpoint`, naming the file).
        """
        from difflab.io.checkpoint import load_checkpoint, newest_intact_checkpoint

        json_path = newest_intact_checkpoint(path)
        state = load_checkpoint(json_path, require=STATE_KEYS)
        check_network_tensors(state, self.unwrapped_model().state_dict(), json_path)
        return json_path, state

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore `read_checkpoint(path)` now."""
        json_path, state = self.read_checkpoint(path)
        self.load_state_dict(state)
        log.info("resumed from %s (epoch %d, step %d)", json_path, self.epoch, self.step)

    def _callback_keys(self) -> list[tuple[str, Callback]]:
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append((name if seen[name] == 1 else f"{name}{seen[name]}", cb))
        return keys


def check_network_tensors(state: dict[str, Any], network: dict[str, Any], json_path: Path) -> None:
    """Every copy of the network in a checkpoint (its weights, an EMA's) has the network's
    keys, shapes and dtypes. load_state_dict would raise on a shape and cast a dtype silently
    (float16 weights would resume as a different, rounded model)."""
    from difflab.io.checkpoint import DamagedCheckpoint

    where = json_path.with_suffix(".safetensors")
    fix = "move it out of checkpoints/ to resume from the one before"
    copies = [("model", state["model"])] + [
        (f"callbacks/{name}/{key}", value)
        for name, saved in (state.get("callbacks") or {}).items() if isinstance(saved, dict)
        for key, value in saved.items() if isinstance(value, dict) and set(value) == set(network)
    ]  # fmt: skip
    for label, copy in copies:
        if not isinstance(copy, dict) or set(copy) != set(network):
            raise DamagedCheckpoint(f"{where}: {label} has not the network's tensors; {fix}")
        for key, want in network.items():
            got = copy[key]
            if not isinstance(got, torch.Tensor) or (got.dtype, got.shape) != (
                want.dtype,
                want.shape,
            ):
                raise DamagedCheckpoint(
                    f"{where}: {label}/{key} is {_describe(got)}, the network has "
                    f"{_describe(want)}; its hashes agree, so it was written so: {fix}"
                )


def _describe(value: Any) -> str:
    if not isinstance(value, torch.Tensor):
        return type(value).__name__
    return f"{str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"
