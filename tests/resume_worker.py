"""Not a test: a tiny training run started as a subprocess by test_resume.py / test_ddp.py
(SIGKILL, SIGTERM and `accelerate launch`), and the pieces the in-process tests share.

    python tests/resume_worker.py RUN_DIR OUT.safetensors [--resume] [--delay S] ...
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import torch
from torch import nn

from difflab.training.callback import Callback

N_IMAGES, BATCH, SIZE = 96, 8, 4  # 12 batches per epoch of 1x4x4 images


class MLP(nn.Module):
    def __init__(self, dim: int = SIZE * SIZE, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1)).view_as(x)


def denoise_objective(model: nn.Module, batch) -> torch.Tensor:
    """Predict the noise added to x; draws from the global torch RNG (resume must restore it)."""
    x, _ = batch
    noise = torch.randn_like(x)
    return nn.functional.mse_loss(model(x + noise), noise)


def make_images(n: int = N_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    images = rng.integers(0, 256, size=(n, 1, SIZE, SIZE), dtype=np.uint8)
    return images, np.arange(n, dtype=np.int64)  # labels = sample ids


def make_data(*, seed: int = 1, rank: int = 0, world_size: int = 1, n: int = N_IMAGES):
    from difflab.data import InMemoryBatches

    images, ids = make_images(n)
    return InMemoryBatches(
        images, ids, batch_size=BATCH, shuffle=True, seed=seed, rank=rank, world_size=world_size
    )


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MLP()


class DelayCB(Callback):
    """Slows each batch down so that a test can kill the run in the middle."""

    order = 500

    def __init__(self, seconds: float):
        self.seconds = seconds

    def after_batch(self, learn) -> None:
        if learn.training:
            time.sleep(self.seconds)


class LogIdsCB(Callback):
    """Appends "step epoch id,id,..." per training batch to a file, one write per line, so a
    SIGKILL loses at most the line being written (the test reads what reached the kernel).
    It runs before the checkpoint callback: a checkpoint never covers an unlogged batch."""

    order = -1000

    def __init__(self, path: str):
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the run

    def after_batch(self, learn) -> None:
        if learn.training:
            ids = ",".join(str(i) for i in learn.batch[1].tolist())
            self.file.write(f"{learn.step} {learn.epoch} {ids}\n")


def main(argv: list[str]) -> int:
    from safetensors.torch import save_file

    from difflab.training import (
        Learner,
        end_process_group,
        eval_model,
        process_rank,
        stopped_by_signal,
    )
    from difflab.training.callbacks import ProgressCB
    from difflab.training.standard import standard_callbacks

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--ids-log", help="log each training batch's sample ids to this file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    torch.set_num_threads(1)
    rank, world_size = process_rank()
    callbacks = standard_callbacks(
        mixed_precision="no",
        lr_schedule="onecycle",
        warmup=0.3,
        checkpoint_every=args.every,
        progress=False,
        cpu=True,
    )
    callbacks += [ProgressCB(log_every=0.0, tty=False), DelayCB(args.delay)]
    if args.ids_log:
        callbacks.append(LogIdsCB(args.ids_log))
    learn = Learner(
        make_model(),
        make_data(rank=rank, world_size=world_size),
        denoise_objective,
        valid_data=make_data(seed=7, n=32),
        lr=1e-2,
        run_dir=args.run_dir,
        callbacks=callbacks,
        config={"test": True},
    )
    learn.fit(args.epochs, resume=args.run_dir if args.resume else None)
    stopped = stopped_by_signal(learn)
    if stopped is not None:
        print(f"stopped by signal {stopped}", flush=True)
    elif learn.is_main_process or world_size > 1:
        weights = {f"model.{k}": v for k, v in learn.unwrapped_model().state_dict().items()}
        weights |= {f"ema.{k}": v for k, v in eval_model(learn).state_dict().items()}
        save_file(weights, args.out.replace("RANK", str(rank)))
    end_process_group()  # a gloo group alive at exit can abort the process
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
