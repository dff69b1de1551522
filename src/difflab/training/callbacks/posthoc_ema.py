"""Post-hoc EMA (EDM2): power-function averages of the weights, stored as snapshots every K
steps so that `difflab ema` can reconstruct the average of any width after training.

Maths in difflab.models.posthoc_ema; files in difflab.io.ema_snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from difflab.io.ema_snapshots import SNAPSHOT_DIR, save_snapshot
from difflab.models.posthoc_ema import power_ema_update, sigma_rel_to_gamma
from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

log = logging.getLogger("difflab.training")


class PostHocEMACB(Callback):
    """Keeps one power-function EMA per `sigma_rels` entry (EDM2 eq. 127), and writes each to
    `folder` (default `<run_dir>/ema_snapshots`) every `every` steps and when the fit ends.

    The averages are part of the checkpoint (exact resume): a resumed run rewrites the same
    snapshots, bit for bit. Under DDP every process holds the same weights, hence the same
    averages; only the main process writes.
    """

    order = 30  # with EMACB: after the optimiser step, before checkpoints (100)

    def __init__(
        self, sigma_rels: Sequence[float] = (0.05, 0.10), *, every: int,
        folder: str | Path | None = None,
    ):  # fmt: skip
        if every < 1:
            raise ValueError(f"--train.posthoc-ema-every: must be >= 1 here, got {every}")
        if not sigma_rels:
            raise ValueError("--train.posthoc-ema-sigma-rels: give at least one, e.g. 0.05,0.1")
        self.sigma_rels = tuple(float(s) for s in sigma_rels)
        self.gammas = tuple(sigma_rel_to_gamma(s) for s in self.sigma_rels)  # validates
        self.every = every
        self.folder = Path(folder) if folder is not None else None
        self.names: list[str] = []  # the averaged parameters' names
        self.averages: list[list[torch.Tensor]] = []  # per profile, per parameter
        self.step = 0  # the optimiser step the averages correspond to
        self._written: int | None = None

    def before_fit(self, learn: Learner) -> None:
        if self.folder is None:
            if learn.run_dir is None:
                raise ValueError("PostHocEMACB needs a folder: pass run_dir to the Learner")
            self.folder = learn.run_dir / SNAPSHOT_DIR
        if not self.averages:
            named = [(n, p) for n, p in learn.unwrapped_model().named_parameters()
                     if p.is_floating_point()]  # fmt: skip
            self.names = [n for n, _ in named]
            self.averages = [
                [p.detach().float().clone() for _, p in named] for _ in self.sigma_rels
            ]
            self.step = learn.step

    def after_step(self, learn: Learner) -> None:
        if learn.step == self.step:  # a skipped step (fp16 overflow): the weights did not move
            return
        # beta_1 = 0: step 1 copies the weights. A gap means a resume from a checkpoint
        # without averages: they restart from the current weights (approximate profiles).
        restart = learn.step != self.step + 1
        if restart:
            log.warning(
                "post-hoc EMA starts at step %d, not 0 (the checkpoint holds no averages): "
                "reconstructions from these snapshots are approximate", learn.step,
            )  # fmt: skip
        params = dict(learn.unwrapped_model().named_parameters())
        current = [params[n].detach() for n in self.names]
        for averages, gamma in zip(self.averages, self.gammas):
            power_ema_update(averages, current, 1 if restart else learn.step, gamma)
        self.step = learn.step
        if self.step % self.every == 0:
            self.write(learn)

    def after_fit(self, learn: Learner) -> None:
        if self.step > 0 and self._written != self.step:
            self.write(learn)  # the end of training is the usual reconstruction target

    def write(self, learn: Learner) -> None:
        """One snapshot per profile at the current step (main process only)."""
        self._written = self.step
        if not learn.is_main_process:
            return
        model = learn.unwrapped_model()
        buffers = {n: b for n, b in model.state_dict().items() if n not in set(self.names)}
        for sigma_rel, gamma, averages in zip(self.sigma_rels, self.gammas, self.averages):
            state = {**buffers, **dict(zip(self.names, averages))}
            save_snapshot(self.folder, state, step=self.step, sigma_rel=sigma_rel,
                          gamma=gamma, averaged=self.names)  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "sigma_rels": list(self.sigma_rels),
            "averages": [dict(zip(self.names, avg)) for avg in self.averages],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if [float(s) for s in state["sigma_rels"]] != list(self.sigma_rels):
            raise ValueError(
                f"the checkpoint's post-hoc EMA profiles {state['sigma_rels']} differ from "
                f"--train.posthoc-ema-sigma-rels {list(self.sigma_rels)}; resume with the same"
            )
        for averages, saved in zip(self.averages, state["averages"]):
            for tensor, name in zip(averages, self.names):
                tensor.copy_(saved[name])
        self.step = int(state["step"])
