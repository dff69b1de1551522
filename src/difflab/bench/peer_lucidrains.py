"""The second end-to-end peer: lucidrains' denoising-diffusion-pytorch, on Fashion-MNIST, on CPU.

Its `Unet` and `GaussianDiffusion` with the library's defaults (objective `pred_v`, the
`sigmoid` beta schedule, 1000 steps; neither is passed, so a new release's defaults are what
runs), trained by the loop of its `Trainer` with the Trainer's defaults: Adam(lr 1e-4, betas
(0.9, 0.99)), batch 16, gradient clipping at 1.0, fp32 (`amp=False`), random horizontal flips,
images in [0, 1] (GaussianDiffusion's `auto_normalize` maps them to [-1, 1]), and
ema-pytorch's `EMA(beta=0.995, update_every=10)` (its other settings at their defaults:
plain copies for the first 100 steps, then warm-up inv_gamma 1, power 2/3). The learning
rate is constant, as in the Trainer (its README's example passes lr 8e-5 with batch 32 x 2
accumulation; the Trainer's defaults are used here).
Changes forced by the setting: `Unet(dim=48, dim_mults=(1, 2, 4), channels=1)` on 28x28
images (the default mults (1, 2, 4, 8) need sides divisible by 8 and are 20M parameters at
dim 48; three levels, 28 -> 14 -> 7, give 5.7M, near fmnist-cpu's UNet and diffusers' w=40),
batches from difflab's in-memory batcher instead of its per-file Dataset/DataLoader (in the
peer's favour), and no Accelerator (one process: `clip_grad_norm_` is torch's).
Sampling: its own DDIM (`sampling_timesteps=25`, `ddim_sampling_eta` 0, x0 clipped), seeded
through torch's global generator, which is the only one its sampler draws from.

torchvision: `denoising_diffusion_pytorch/denoising_diffusion_pytorch.py` (the module that
defines Unet and GaussianDiffusion) runs `from torchvision import transforms as T, utils` at
import, for its Dataset and Trainer only, and torchvision from PyPI does not install beside the
pinned CPU torch. Without it the import fails with
    ModuleNotFoundError: No module named 'torchvision'
`import_lucidrains` therefore puts a stand-in module in `sys.modules` for the length of that one
import, then removes it; any attribute of the stand-in (T.Compose, utils.save_image, ...)
raises. Where a real torchvision imports, the stand-in is not used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Any

import torch

from difflab.bench.peer import flip_half, fmnist_batches, train_under_budget

INSTALL_HINT = (
    "bash scripts/install_test_deps.sh installs it without torchvision "
    "(pip install --no-deps -r requirements/no-deps-peers.txt -c requirements/dev-constraints.txt)"
)


class LucidrainsUnavailable(ImportError):
    """denoising-diffusion-pytorch (or einops / ema-pytorch) is not importable here."""


@dataclass(frozen=True)
class LucidrainsRecipe:
    """The library's defaults (Trainer / GaussianDiffusion / EMA) unless noted."""

    dim: int = 48  # not a default: sized for 28x28 (see the module docstring)
    dim_mults: tuple[int, ...] = (1, 2, 4)  # default (1, 2, 4, 8) needs sides divisible by 8
    image_size: int = 28
    timesteps: int = 1000
    sampling_timesteps: int = 25  # its DDIM, at the other arms' step count
    batch_size: int = 16
    lr: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.99)
    max_grad_norm: float = 1.0
    ema_decay: float = 0.995
    ema_update_every: int = 10
    random_flip: bool = True  # Trainer(augment_horizontal_flip=True)
    seed: int = 0


class _Refuse(types.ModuleType):
    """A module whose every public attribute raises: the torchvision stand-in's parts."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(
            f"{self.__name__}.{name}: torchvision is not installed and this is difflab's "
            "stand-in, which only lets denoising_diffusion_pytorch import; its Trainer and "
            "Dataset (the parts that use torchvision) are not usable here"
        )


@contextlib.contextmanager
def _torchvision_stand_in():
    """`torchvision`, `.transforms` and `.utils` in sys.modules while the block runs, if
    torchvision is not installed; sys.modules is as it was afterwards."""
    if importlib.util.find_spec("torchvision") is not None:
        yield False
        return
    names = ("torchvision", "torchvision.transforms", "torchvision.utils")
    stand_in = {name: _Refuse(name) for name in names}
    package = types.ModuleType("torchvision")
    package.transforms, package.utils = stand_in[names[1]], stand_in[names[2]]
    stand_in["torchvision"] = package
    sys.modules.update(stand_in)
    try:
        yield True
    finally:
        for name in names:
            if sys.modules.get(name) is stand_in[name]:
                del sys.modules[name]


def import_lucidrains() -> tuple[Any, Any, Any, bool]:
    """(Unet, GaussianDiffusion, EMA, used the torchvision stand-in) or LucidrainsUnavailable."""
    try:
        # its other imports first, so that nothing but the peer's own modules sees the stand-in
        import accelerate  # noqa: F401
        import einops  # noqa: F401
        from ema_pytorch import EMA
    except ImportError as err:
        raise LucidrainsUnavailable(f"{err}; {INSTALL_HINT}") from err
    with _torchvision_stand_in() as stand_in:
        try:
            from denoising_diffusion_pytorch.denoising_diffusion_pytorch import (
                GaussianDiffusion,
                Unet,
            )
        except ImportError as err:
            raise LucidrainsUnavailable(
                f"denoising-diffusion-pytorch: {err}; {INSTALL_HINT}"
            ) from err
    return Unet, GaussianDiffusion, EMA, stand_in


class LucidrainsTrainer:
    """One step of its Trainer.train loop (without Accelerator), and the EMA model."""

    def __init__(self, recipe: LucidrainsRecipe) -> None:
        Unet, GaussianDiffusion, EMA, self.torchvision_stand_in = import_lucidrains()
        torch.manual_seed(recipe.seed)
        self.recipe = recipe
        unet = Unet(dim=recipe.dim, dim_mults=recipe.dim_mults, channels=1)
        self.diffusion = GaussianDiffusion(
            unet, image_size=recipe.image_size, timesteps=recipe.timesteps,
            sampling_timesteps=recipe.sampling_timesteps,
        )  # fmt: skip
        self.optimizer = torch.optim.Adam(
            self.diffusion.parameters(), lr=recipe.lr, betas=recipe.adam_betas
        )
        self.ema = EMA(self.diffusion, beta=recipe.ema_decay, update_every=recipe.ema_update_every)
        self.generator = torch.Generator().manual_seed(recipe.seed)
        self.steps = 0

    def step(self, clean: torch.Tensor, fraction: float) -> float:
        """One batch x in [0, 1]; `fraction` is unused (the Trainer's LR is constant)."""
        del fraction
        self.diffusion.train()
        if self.recipe.random_flip:
            clean = flip_half(clean, self.generator)
        loss = self.diffusion(clean)  # its t, noise and weighted pred_v loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.diffusion.parameters(), self.recipe.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.ema.update()
        self.steps += 1
        return loss.item()

    def ema_model(self):
        return self.ema.ema_model.eval()


def train_lucidrains(
    recipe: LucidrainsRecipe,
    seconds: float,
    *,
    data_root: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train for `seconds` of wall-clock (the batch that crosses the budget is the last)."""
    trainer = LucidrainsTrainer(recipe)
    batches = fmnist_batches(
        recipe.batch_size, low=0.0, high=1.0, seed=recipe.seed, data_root=data_root, limit=limit
    )
    run = train_under_budget(trainer, batches, seconds, desc="lucidrains", progress=progress)
    diffusion = trainer.diffusion
    return run | {
        "model": trainer.ema_model(),
        "params": sum(p.numel() for p in diffusion.model.parameters()),
        "objective": diffusion.objective,
        "torchvision_stand_in": trainer.torchvision_stand_in,
    }


def sample_lucidrains(diffusion, *, n: int, batch_size: int = 256, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 1, 28, 28) images from its own sampler (`diffusion.sample`, DDIM here)."""
    out = []
    with torch.random.fork_rng(devices=[]):  # its sampler draws from the global generator
        for start in range(0, n, batch_size):
            torch.manual_seed(seed + start)
            x = diffusion.sample(batch_size=min(batch_size, n - start))  # (B, 1, H, W) in [0, 1]
            out.append((x.float().clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(out)
