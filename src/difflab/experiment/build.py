"""Config names become objects here: data, the network, the objective, a Learner and its callbacks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch

from difflab.config import RunConfig, config_to_dict
from difflab.io.trained import build_schedule
from difflab.precision import resolve_precision

# Datasets whose own test split validates the training loss (an image folder has none).
_WITH_TEST_SPLIT = ("fashion_mnist", "mnist", "cifar10")


class Data(NamedTuple):
    train: Any
    valid: Any | None
    image_shape: tuple[int, int, int]  # (C, H, W) as the network sees it (padded, or latent)
    classes: list[str]  # the dataset's class names (label k is classes[k])
    codec: Any = None  # a latent run's autoencoder (io.autoencoder.LatentCodec), else None


def build_data(
    config: RunConfig, *, rank: int = 0, world_size: int = 1, validate: bool = True
) -> Data:
    """Training batches, validation batches (or None), image shape and class names; with
    --data.latent the images are encoded once into scaled latents, and the shape is theirs."""
    from difflab.data import InMemoryBatches, load_images
    from difflab.experiment.latent import encode_images, latent_codec

    d, t = config.data, config.train
    codec = latent_codec(config)
    train = load_images(d.dataset, "train", root=d.root)
    images, labels = train.images, train.labels
    if d.limit is not None:
        images, labels = images[: d.limit], labels[: d.limit]
    if codec is not None:
        images = encode_images(codec, images, what="training")
    common = {"low": d.low, "high": d.high, "pad": d.pad, "rank": rank, "world_size": world_size}
    train_batches = InMemoryBatches(
        images, labels, batch_size=t.batch_size, shuffle=True, seed=t.seed, drop_last=True,
        **common,
    )  # fmt: skip
    valid_batches = None
    if validate and d.dataset in _WITH_TEST_SPLIT:
        test = load_images(d.dataset, "test", root=d.root)
        n_valid = min(len(test.images), max(1024, (d.limit or 0) // 6))
        valid_images = test.images[:n_valid]
        if codec is not None:
            valid_images = encode_images(codec, valid_images, what="validation")
        valid_batches = InMemoryBatches(
            valid_images, test.labels[:n_valid], batch_size=512, shuffle=False,
            drop_last=False, **common,
        )  # fmt: skip
    c, h, w = images.shape[1:]
    shape = (int(c), int(h + 2 * d.pad), int(w + 2 * d.pad))
    return Data(train_batches, valid_batches, shape, list(train.classes), codec)


def resolved_with_data(config: RunConfig, data: Data) -> RunConfig:
    """The config with what only the data and the machine can tell filled in (class count,
    EDM's sigma_data, the precision "auto" picks): what the run folder and model.json record."""
    return with_precision(with_sigma_data(with_class_count(config, data), data))


def with_precision(config: RunConfig) -> RunConfig:
    """--train.mixed-precision auto resolved for this machine (bf16 only where it is native),
    so the run folder records what ran and a resume elsewhere keeps it."""
    precision = resolve_precision(config.train.mixed_precision)
    return dataclasses.replace(
        config, train=dataclasses.replace(config.train, mixed_precision=precision)
    )


def with_class_count(config: RunConfig, data: Data) -> RunConfig:
    """--model.num-classes auto resolved to the dataset's class count; a given count must
    cover every label. The run folder then records the number, never "auto"."""
    wanted = config.model.num_classes
    n = len(data.classes) if wanted == "auto" else int(wanted)
    if 0 < n < len(data.classes):
        raise ValueError(
            f"--model.num-classes: {n} is fewer than the {len(data.classes)} classes of "
            f"{config.data.dataset}; use auto"
        )
    return dataclasses.replace(config, model=dataclasses.replace(config.model, num_classes=str(n)))


def with_sigma_data(config: RunConfig, data: Data) -> RunConfig:
    """--diffusion.objective edm without --diffusion.sigma-data: the standard deviation of the
    training images as the network sees them (scaled, padded), so the run folder and model.json
    record the number the preconditioning used. Other objectives: unchanged."""
    d = config.diffusion
    if d.objective != "edm" or d.sigma_data is not None:
        return config
    sigma_data = round(float(data.train.x.double().std()), 6)
    return dataclasses.replace(config, diffusion=dataclasses.replace(d, sigma_data=sigma_data))


def num_classes(config: RunConfig) -> int:
    if config.model.num_classes == "auto":
        raise ValueError("--model.num-classes auto is resolved from the data (with_class_count)")
    return int(config.model.num_classes)


def build_model(config: RunConfig, image_shape: tuple[int, int, int]) -> torch.nn.Module:
    """difflab's UNet preset, or diffusers' UNet2DModel through the same forward(x_t, t[, y])."""
    n = num_classes(config)
    if config.model.preset == "diffusers":
        from difflab.models.diffusers_adapter import build_diffusers_unet, diffusers_example_config

        arch = diffusers_example_config(sample_size=image_shape[1], in_channels=image_shape[0])
        return build_diffusers_unet({**arch, **({"num_class_embeds": n + 1} if n else {})})
    from difflab.models import build_unet

    return build_unet(
        config.model.preset, in_channels=image_shape[0], dropout=config.model.dropout,
        **({"num_classes": n} if n else {}),
    )  # fmt: skip


def build_objective(config: RunConfig):
    """How a batch becomes a loss: the configured parameterisation and loss weighting (EDM's
    own for "edm", whose sigma_data `with_sigma_data` has resolved), and for a conditional
    model its labels with --train.cond-drop of them replaced by the null class."""
    from difflab.diffusion import make_objective

    d, n = config.diffusion, num_classes(config)
    if d.objective == "edm" and d.sigma_data is None:
        raise ValueError("--diffusion.sigma-data: not resolved; call with_sigma_data first")
    return make_objective(
        build_schedule(config), objective=d.objective, min_snr_gamma=d.min_snr_gamma,
        null_class=n or None, cond_drop=config.train.cond_drop if n else 0.0,
        sigma_data=d.sigma_data, p_mean=d.edm_p_mean, p_std=d.edm_p_std,
    )  # fmt: skip


def recipe_callbacks(config: RunConfig, run_dir: Path, *, progress: bool) -> list:
    """The training recipe's callbacks: device/precision, LR schedule (by the clock under
    --train.minutes), clipping, non-finite guard, EMA, checkpoints and progress."""
    from difflab.training import standard_callbacks
    from difflab.training.callbacks import ProgressCB
    from difflab.training.callbacks.budget import with_budget

    t = config.train
    callbacks = standard_callbacks(
        mixed_precision=t.mixed_precision, lr_schedule=t.lr_schedule, warmup=t.warmup,
        grad_clip=t.grad_clip, ema_decay=t.ema_decay, checkpoint_every=t.checkpoint_every,
        max_nonfinite=t.max_nonfinite, progress=False, run_dir=run_dir,
    )  # fmt: skip
    if t.posthoc_ema_every:
        from difflab.training.callbacks.posthoc_ema import PostHocEMACB

        callbacks.append(PostHocEMACB(t.posthoc_ema_sigma_rels, every=t.posthoc_ema_every))
    if t.minutes:
        callbacks = with_budget(callbacks, t.minutes * 60)
    # progress=False still logs plain progress lines; it only turns the bars off
    return [*callbacks, ProgressCB(tty=None if progress else False)]


def sampling_callbacks(config: RunConfig, run_dir: Path, image_shape) -> list:
    """A sample grid every --train.sample-every epochs, FID every --train.eval-every epochs."""
    from difflab.training.callbacks.diffusion import EvalCB, SampleGridCB

    t = config.train
    callbacks: list = []
    if t.sample_every:
        callbacks.append(
            SampleGridCB(config, image_shape, run_dir / "samples", every=t.sample_every)
        )
    if t.eval_every:
        from difflab.evaluation import dataset_evaluator

        c, h, w = image_shape
        pad = config.data.pad  # the feature model sees images at the dataset's own size
        shape = (c, h - 2 * pad, w - 2 * pad)
        if config.data.latent is not None:  # the decoded images' shape
            from difflab.io.autoencoder import load_autoencoder

            shape = load_autoencoder(config.data.latent).image_shape
        evaluator = dataset_evaluator(config.data.dataset, shape, data_root=config.data.root)
        callbacks.append(EvalCB(config, image_shape, evaluator, every=t.eval_every, n=t.eval_n))
    return callbacks


def build_learner(
    config: RunConfig,
    run_dir: Path,
    *,
    callbacks: Sequence = (),
    data: Data | None = None,
    rank: int = 0,
    world_size: int = 1,
    validate: bool = True,
    progress: bool = True,
) -> tuple[Any, tuple[int, int, int]]:
    """(Learner, image shape) for `config`: data (`build_data`'s, unless given), network (seeded
    by --train.seed), objective, AdamW, the recipe's callbacks, sample grids / FID as
    configured, then `callbacks`."""
    from difflab.training import Learner

    t = config.train
    torch.manual_seed(t.seed)  # the weights' initialisation follows the seed
    if data is None:
        data = build_data(config, rank=rank, world_size=world_size, validate=validate)
    config = resolved_with_data(config, data)
    train_batches, valid_batches, image_shape = data.train, data.valid, data.image_shape
    model = build_model(config, image_shape)
    if world_size > 1:  # same weights on every rank (above), but each rank its own noise
        torch.manual_seed(t.seed + rank)
    if t.compile:
        from difflab.training.compiled import compile_for_training

        compile_for_training(model)  # in place, kernels cached on disk between runs
    every = recipe_callbacks(config, run_dir, progress=progress)
    every += sampling_callbacks(config, run_dir, image_shape)
    optimizer = partial(torch.optim.AdamW, weight_decay=t.weight_decay, foreach=True)
    learn = Learner(
        model, train_batches, build_objective(config), valid_data=valid_batches, lr=t.lr,
        optimizer=optimizer, callbacks=[*every, *callbacks], run_dir=run_dir,
        config=config_to_dict(config),
    )  # fmt: skip
    return learn, image_shape
