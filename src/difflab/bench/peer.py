"""The end-to-end peer: diffusers' unconditional training example, on Fashion-MNIST, on CPU.

Follows examples/unconditional_image_generation/train_unconditional.py (diffusers 0.42) with
its defaults: UNet2DModel, DDPMScheduler (1000 steps, linear betas 1e-4..0.02, eps
prediction), AdamW(lr 1e-4, betas (0.95, 0.999), weight decay 1e-6, eps 1e-8), cosine schedule
with 500 warm-up steps, gradient clipping at 1.0, EMAModel (max decay 0.9999, warm-up with
inv_gamma 1, power 3/4), images scaled to [-1, 1] with a random horizontal flip, batch 16.
Changes, all in the peer's favour or forced by the setting: the network is scaled down to 28x28
(`diffusers_example_config`), batches come from difflab's in-memory batcher (the example's
per-item DataLoader would cost the peer time), bf16 autocast as the example's
`--mixed_precision bf16`, and the schedule follows the budget's clock (warm-up: 500 steps or
10% of the budget, whichever ends first).
Sampling: DDIMScheduler built from the training scheduler's config, as the example's
pipeline does (so clip_sample=True, the DDPMScheduler default; "leading" spacing).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PeerRecipe:
    """The example's hyper-parameters (defaults of its argument parser unless noted)."""

    width: int = 40  # block_out_channels (w, 2w, 4w): 5.8M params, near fmnist-cpu's 6.3M
    batch_size: int = 16
    lr: float = 1e-4
    adam_betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-6
    adam_eps: float = 1e-8
    warmup_steps: int = 500
    ema_max_decay: float = 0.9999
    ema_inv_gamma: float = 1.0
    ema_power: float = 0.75
    random_flip: bool = True  # the example's README command passes --random_flip
    bf16: bool = True
    seed: int = 0


# --- Cosine with warm-up, as diffusers.optimization.get_cosine_schedule_with_warmup
# --- (num_cycles 0.5), indexed by the share of the wall-clock budget spent (see budget.py):
#   warm-up: lr = max_lr * max(step / W, fraction / WARMUP_CAP)    until that reaches 1
#   then:    lr = max_lr * (1 + cos(pi * progress)) / 2, progress = (fraction - f_w) / (1 - f_w)
# where f_w is the fraction at which warm-up ended. At a steady step rate with W < 10% of the
# steps this is exactly diffusers' curve; on a short budget warm-up stops at 10% of the time.
WARMUP_CAP = 0.1


class PeerLRSchedule:
    """LR multiplier of the example's schedule, given the step and the budget fraction."""

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.warmup_end: float | None = None

    def factor(self, step: int, fraction: float) -> float:
        if self.warmup_end is None:
            warm = max(step / max(1, self.warmup_steps), fraction / WARMUP_CAP)
            if warm < 1.0:
                return warm
            self.warmup_end = fraction
        progress = (fraction - self.warmup_end) / max(1e-12, 1.0 - self.warmup_end)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def fmnist_batches(
    batch_size: int, *, low: float, high: float, seed: int, data_root: str | None,
    limit: int | None,
):  # fmt: skip
    """Fashion-MNIST train images in memory, shuffled by epoch, scaled to [low, high]."""
    from difflab.data import InMemoryBatches, load_images

    images = load_images("fashion_mnist", "train", data_root).images[:limit]
    return InMemoryBatches(images, batch_size=batch_size, low=low, high=high, seed=seed)


def flip_half(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RandomHorizontalFlip(p=0.5), image by image."""
    mask = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


class PeerTrainer:
    """One training step of the example's loop, and its model, scheduler, optimiser and EMA."""

    def __init__(self, recipe: PeerRecipe) -> None:
        from diffusers import DDPMScheduler, UNet2DModel
        from diffusers.training_utils import EMAModel

        from difflab.models.diffusers_adapter import diffusers_example_config

        torch.manual_seed(recipe.seed)
        self.recipe = recipe
        self.model = UNet2DModel(**diffusers_example_config(width=recipe.width))
        self.scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=recipe.lr, betas=recipe.adam_betas,
            weight_decay=recipe.weight_decay, eps=recipe.adam_eps,
        )  # fmt: skip
        self.lr_schedule = PeerLRSchedule(recipe.warmup_steps)
        self.ema = EMAModel(
            self.model.parameters(), decay=recipe.ema_max_decay, use_ema_warmup=True,
            inv_gamma=recipe.ema_inv_gamma, power=recipe.ema_power,
        )  # fmt: skip
        self.generator = torch.Generator().manual_seed(recipe.seed)
        self.steps = 0

    def step(self, clean: torch.Tensor, fraction: float) -> float:
        """The example's inner loop for one batch (x in [-1, 1]), `fraction` of budget spent."""
        g = self.generator
        for group in self.optimizer.param_groups:
            group["lr"] = self.recipe.lr * self.lr_schedule.factor(self.steps, fraction)
        if self.recipe.random_flip:
            clean = flip_half(clean, g)
        noise = torch.randn(clean.shape, generator=g)
        timesteps = torch.randint(0, 1000, (clean.shape[0],), generator=g)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        with _autocast(self.recipe.bf16):
            eps_hat = self.model(noisy, timesteps).sample
        loss = F.mse_loss(eps_hat.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.ema.step(self.model.parameters())
        self.steps += 1
        return loss.item()

    def ema_model(self):
        self.ema.copy_to(self.model.parameters())
        return self.model.eval()


def train_under_budget(
    trainer, batches, seconds: float, *, desc: str, progress: bool = True
) -> dict[str, Any]:
    """Call `trainer.step(x, fraction)` on epoch after epoch of `batches` until `seconds` of
    wall-clock are spent (the batch that crosses the budget is the last)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=round(seconds), desc=desc, unit="s", disable=not progress)
    start, epoch, fraction = time.perf_counter(), 0, 0.0
    while fraction < 1.0:
        batches.set_epoch(epoch)
        for x, _ in batches:
            loss = trainer.step(x, fraction)
            fraction = min(1.0, (time.perf_counter() - start) / seconds)
            bar.update(round(fraction * seconds) - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}", steps=trainer.steps, refresh=False)
            if fraction >= 1.0:
                break
        epoch += 1
    elapsed = time.perf_counter() - start
    bar.close()
    return {
        "steps": trainer.steps,
        "epochs_started": epoch,
        "train_seconds": elapsed,
        "stopped_by_budget": True,
        "train_images_per_s": trainer.steps * batches.batch_size / elapsed,
    }


def train_peer(
    recipe: PeerRecipe,
    seconds: float,
    *,
    data_root: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train for `seconds` of wall-clock (the batch that crosses the budget is the last)."""
    trainer = PeerTrainer(recipe)
    batches = fmnist_batches(
        recipe.batch_size, low=-1.0, high=1.0, seed=recipe.seed, data_root=data_root, limit=limit
    )
    run = train_under_budget(trainer, batches, seconds, desc="diffusers example", progress=progress)
    return run | {
        "model": trainer.ema_model(),
        "scheduler_config": dict(trainer.scheduler.config),
        "params": sum(p.numel() for p in trainer.model.parameters()),
    }


@torch.no_grad()
def sample_peer(
    model, scheduler_config: dict, *, n: int, steps: int = 25, batch_size: int = 256,
    bf16: bool = True, seed: int = 0, progress: bool = True,
) -> torch.Tensor:  # fmt: skip
    """uint8 (n, 1, 28, 28) images by DDIMPipeline's loop (eta 0), as the example would."""
    from diffusers import DDIMScheduler
    from tqdm.auto import tqdm

    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in tqdm(range(0, n, batch_size), desc="diffusers DDIM", disable=not progress):
        x = torch.randn((min(batch_size, n - start), 1, 28, 28), generator=generator)
        for t in scheduler.timesteps:
            with _autocast(bf16):
                eps_hat = model(x, t).sample.float()
            x = scheduler.step(eps_hat, t, x, eta=0.0).prev_sample
        # DDIMPipeline: (x / 2 + 0.5).clamp(0, 1), then numpy_to_pil's (x * 255).round()
        out.append(((x / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(out)
