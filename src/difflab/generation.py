"""Images from a trained model: the glue between a network and a registered sampler.

Used by `difflab sample`, `difflab eval`, quickstart, and the sample-grid and FID callbacks
during training. Image k always comes from seed `seed + k`, so a grid is the same whatever the
batch size. The sampling config (difflab.config.SampleConfig) is passed whole: it holds the one
default of every sampling option, and the registry entry of its sampler reads what it needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Sequence

import torch

from difflab.config import SampleConfig
from difflab.data.scaling import crop_padding
from difflab.diffusion import as_noise_predictor
from difflab.diffusion.guidance import (
    autoguidance,
    classifier_free_guidance,
    evaluations_per_step,
    guided_steps,
)
from difflab.io.trained import TrainedModel
from difflab.precision import AUTO, resolve_precision
from difflab.samplers import SamplingPlan, sample_in_batches, sampler_spec


def pick_device(name: str = "auto") -> torch.device:
    """--device: "auto" is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device: {name!r} is not a device (auto, cpu, cuda, cuda:1)") from err


def sampling_plan(trained: TrainedModel, sample: SampleConfig) -> SamplingPlan:
    """The registered sampler's timesteps, options and cost for this model's schedule."""
    return sampler_spec(sample.sampler).plan(trained.schedule.alpha_bar, sample)


def null_class(trained: TrainedModel) -> int | None:
    """The null label of a class-conditional model; None for an unconditional one."""
    return getattr(trained.model, "null_class", None)


def network_evaluations(trained: TrainedModel, sample: SampleConfig) -> int:
    """Network evaluations per image: the sampler's, plus one for each call that guidance
    doubles: classifier-free guidance needs the unconditional prediction too (Ho & Salimans
    2022), autoguidance the guide model's (Karras et al. 2024)."""
    plan = sampling_plan(trained, sample)
    classifier_free = null_class(trained) is not None and evaluations_per_step(sample.guidance) == 2
    if not classifier_free and sample.autoguidance == 1.0:
        return plan.evaluations
    return plan.evaluations + guided_calls(plan, sample)


def guided_calls(plan: SamplingPlan, sample: SampleConfig) -> int:
    """Model calls per image that guidance doubles: all of them, or with --guide-interval
    those at a t inside it (samplers with one call per timestep only)."""
    interval = sample.guided_timesteps()
    if interval is None:
        return plan.evaluations
    if plan.evaluations != len(plan.timesteps):
        raise ValueError(
            f"--guide-interval: {sample.sampler} calls the model between its timesteps; "
            "use a one-call-per-step sampler (ddim, ddpm, euler, dpmpp_2m) or no interval"
        )
    return guided_steps(plan.timesteps, interval)


def with_autoguidance(predict: Callable, trained: TrainedModel, sample: SampleConfig) -> Callable:
    """`predict` steered away from the run's guide model (Karras et al. 2024) when
    --autoguidance is not 1; the guide sees the same x_t, t (and labels)."""
    if sample.autoguidance == 1.0:
        return predict
    guide = trained.guide
    if guide is None:
        raise ValueError(
            "--autoguidance: this model has no guide model (RUN/guide); train with "
            "--train.guide-at 0.25 to write one, name one with --guide PATH, or sample with "
            "--autoguidance 1"
        )
    if null_class(trained) is not None and sample.guidance != 1.0:
        raise ValueError(
            "--autoguidance with --guidance: use one kind of guidance at a time "
            "(set --guidance 1 or --autoguidance 1)"
        )
    predict_guide = as_noise_predictor(
        guide.model, guide.schedule, guide.objective, sigma_data=guide.sigma_data
    )
    return autoguidance(
        predict, predict_guide, scale=sample.autoguidance, t_interval=sample.guided_timesteps()
    )


def balanced_labels(n: int, n_classes: int) -> torch.Tensor:
    """Image k asks for class k mod n_classes."""
    return torch.arange(n, dtype=torch.int64) % n_classes


def class_rows(trained: TrainedModel, n: int) -> tuple[torch.Tensor | None, int | None]:
    """(labels, columns) of a grid of about n images with one row per class for a conditional
    model; (None, None) for an unconditional one."""
    classes = null_class(trained)
    if classes is None:
        return None, None
    per_class = max(1, n // classes)
    return torch.arange(classes).repeat_interleave(per_class), per_class


def class_label(trained: TrainedModel, name_or_index: str) -> int:
    """--class: a class index, or a class name as the dataset calls it (e.g. sneaker)."""
    classes, n = trained.classes, null_class(trained)
    if n is None:
        raise ValueError("--class: this model is unconditional (trained with num_classes 0)")
    if name_or_index.isdigit() and int(name_or_index) < n:
        return int(name_or_index)
    matches = [k for k, name in enumerate(classes) if name.lower() == name_or_index.lower()]
    if not matches:
        listed = ", ".join(f"{k}={name}" for k, name in enumerate(classes)) or f"0..{n - 1}"
        raise ValueError(f"--class: {name_or_index!r} is not a class of this model ({listed})")
    return matches[0]


def _autocast(enabled: bool, device: torch.device):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def generate_images(
    trained: TrainedModel,
    sample: SampleConfig,
    *,
    seeds: Sequence[int] | None = None,
    labels: torch.Tensor | None = None,
    bf16: bool | None = None,
    on_step: Callable | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Float images (N, C, H, W) in the data range at the dataset's size (padding cropped).

    A latent model (trained.codec) samples latents and decodes them here, once, so every
    sampler, guidance and every metric downstream sees images; `on_step` then receives x0_hat
    decoded to images (x_t stays a latent).

    seeds: one per image (default: sample.seed + k for k < sample.n). labels: the class of
    each image for a conditional model (default: image k asks for class k mod C), guided with
    scale sample.guidance. The noise is drawn on the model's device; the network runs under
    bf16 autocast when `bf16` (None: where the device computes bf16 natively, as training's
    "auto"), the sampler's arithmetic in float32 whatever the network's dtype.
    """
    seeds = list(range(sample.seed, sample.seed + sample.n)) if seeds is None else list(seeds)
    plan = sampling_plan(trained, sample)
    model, device = trained.model, trained.device
    if bf16 is None:
        bf16 = resolve_precision(AUTO, device) == "bf16"
    predict = as_noise_predictor(
        model, trained.schedule, trained.objective, sigma_data=trained.sigma_data
    )
    null = null_class(trained)
    if null is None and labels is not None:
        raise ValueError("--class: this model is unconditional (trained with num_classes 0)")
    if null is None and sample.guidance != 1.0:  # e.g. the headline preset on unlabelled data
        warnings.warn(
            f"--guidance {sample.guidance:g} has no effect: this model is unconditional "
            "(classifier-free guidance needs labels; --autoguidance needs none)",
            stacklevel=2,
        )
    if null is not None:
        labels = balanced_labels(len(seeds), null) if labels is None else labels
        if labels.min() < 0 or labels.max() >= null:
            raise ValueError(f"--class: labels must be in [0, {null - 1}]")
        predict = classifier_free_guidance(
            predict, null_class=null, scale=sample.guidance, t_interval=sample.guided_timesteps()
        )
    predict = with_autoguidance(predict, trained, sample)

    def predict_noise(x_t: torch.Tensor, t: torch.Tensor, *y: torch.Tensor) -> torch.Tensor:
        with _autocast(bf16, device):
            return predict(x_t, t, *y).float()

    codec = trained.codec
    if codec is not None and sample.clip_x0:
        raise ValueError(
            "--clip-x0: a latent model's x0 is a latent, which has no data range; drop the flag"
        )
    if codec is not None and on_step is not None:
        user_on_step = on_step

        def on_step(info):  # the caller's metric sees images, as with a pixel model
            return user_on_step(dataclasses.replace(info, x0_hat=codec.decode(info.x0_hat)))

    was_training = model.training
    model.eval()
    if trained.guide is not None:
        trained.guide.model.eval()

    try:
        images = sample_in_batches(
            plan,
            predict_noise,
            seeds=seeds,
            shape=trained.image_shape,
            batch_size=sample.batch_size,
            alpha_bar=trained.schedule.alpha_bar,
            device=device,
            on_step=on_step,
            clip_x0=(trained.low, trained.high) if sample.clip_x0 else None,
            progress=progress,
            conditions=labels,
        )
    finally:
        model.train(was_training)
    if codec is not None:
        images = decode_latents(codec, images, batch_size=sample.batch_size)
    return crop_padding(images, trained.pad)


def decode_latents(codec, latents: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """Scaled latents (N, c, h, w) -> float32 images (N, C, H, W), `batch_size` at a time."""
    chunks = [codec.decode(latents[i : i + batch_size]) for i in range(0, len(latents), batch_size)]
    return torch.cat(chunks) if chunks else latents
