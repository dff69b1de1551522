"""A trained diffusion model as a file: what `model.json` records, how to save and load it.

Format "difflab-model/1": `model.safetensors` (EMA weights) beside `model.json` holding
`unet` (the architecture, with its `kind`), `image_shape` (C, H, W) as trained, `run_config`
(the resolved RunConfig: schedule, objective, data range, padding) and `weights_sha256`.
A latent model (trained with --data.latent) also records `autoencoder`: the path, sha256,
scale factor and shapes of the autoencoder it samples through (io/autoencoder.py); its
`image_shape` is then the latent shape. Every field is checked before use, and a bad one is
named in a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from difflab.config import RunConfig, config_from_dict, config_to_dict
from difflab.diffusion import Schedule, schedule_from_config
from difflab.io.autoencoder import LatentCodec, codec_for_record, load_autoencoder
from difflab.io.model_file import load_model_file, resolve_model_path, save_model

MODEL_FORMAT = "difflab-model/1"


@dataclass(frozen=True)
class TrainedModel:
    """A network ready to sample from, with what it needs to know about its data.

    image_shape is the shape the network sees (padding included); `pad` pixels on each side
    are cropped before images are shown or measured. A latent model has a `codec`: the network
    sees latents of image_shape, and generate_images decodes them to images of output_shape.
    """

    model: torch.nn.Module
    schedule: Schedule
    objective: str
    image_shape: tuple[int, int, int]
    low: float
    high: float
    pad: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    sigma_data: float | None = None  # an "edm" model's data std (diffusion.sigma_data)
    codec: LatentCodec | None = None  # a latent model's autoencoder (None: pixel space)
    # autoguidance's weaker model (RUN/guide, written by --train.guide-at); None: the run has none
    guide: TrainedModel | None = None

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images it makes: the dataset's size, padding cropped, decoded."""
        if self.codec is not None:
            return self.codec.image_shape
        c, h, w = self.image_shape
        return (c, h - 2 * self.pad, w - 2 * self.pad)

    @property
    def classes(self) -> list[str]:
        """Class names of a conditional model (label k is classes[k]); [] if unconditional."""
        return list(self.meta.get("classes", []))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def build_schedule(config: RunConfig) -> Schedule:
    d = config.diffusion
    return schedule_from_config(d.schedule, d.n_steps, d.beta_min, d.beta_max)


def trained_model(
    model: torch.nn.Module,
    config: RunConfig,
    image_shape,
    *,
    meta: dict | None = None,
    codec: LatentCodec | None = None,
) -> TrainedModel:
    """The TrainedModel of a network trained with `config` (also mid-training, for grids);
    a latent config's autoencoder is loaded from --data.latent unless `codec` is given."""
    d = config.data
    if codec is None and d.latent is not None:
        codec = load_autoencoder(d.latent)
    return TrainedModel(
        model, build_schedule(config), config.diffusion.objective, tuple(image_shape),
        d.low, d.high, d.pad, dict(meta or {}), config.diffusion.sigma_data, codec,
    )  # fmt: skip


def model_meta(
    config: RunConfig,
    model: torch.nn.Module,
    image_shape: tuple[int, ...],
    classes: list[str] | None = None,
    *,
    autoencoder: dict | None = None,
) -> dict:
    """What model.json records: enough to rebuild the network and sample from it; a
    conditional model's class names too (label k is classes[k]); a latent model's autoencoder
    (`autoencoder`, else read from --data.latent)."""
    meta = {
        "format": MODEL_FORMAT,
        "unet": model.config(),
        "image_shape": list(image_shape),
        "run_config": config_to_dict(config),
    }
    if getattr(model, "null_class", None) is not None:
        meta["classes"] = list(classes or [])
    if config.data.latent is not None:
        meta["autoencoder"] = autoencoder or load_autoencoder(config.data.latent).record()
    return meta


def save_trained(
    folder: Path,
    model: torch.nn.Module,
    config: RunConfig,
    image_shape: tuple[int, ...],
    *,
    classes: list[str] | None = None,
    autoencoder: dict | None = None,
) -> Path:
    """model.safetensors + model.json into `folder`; returns the weights' path."""
    meta = model_meta(config, model, image_shape, classes, autoencoder=autoencoder)
    return save_model(folder, model.state_dict(), meta)


def model_from_config(config: dict[str, Any]) -> torch.nn.Module:
    """Rebuild an architecture recorded in model.json (its `kind` says which class)."""
    from difflab.models import UNet
    from difflab.models.unet import CONFIG_KIND

    if config.get("kind") == CONFIG_KIND:
        return UNet.from_config(config)
    from difflab.models.diffusers_adapter import CONFIG_KIND as DIFFUSERS_KIND
    from difflab.models.diffusers_adapter import DiffusersUNet

    if config.get("kind") == DIFFUSERS_KIND:
        return DiffusersUNet.from_config(config)
    raise ValueError(f"kind {config.get('kind')!r} is not one of {CONFIG_KIND}, {DIFFUSERS_KIND}")


def load_trained(
    path: str | Path, *, device: str | torch.device = "cpu", guide: str | Path | None = None
) -> TrainedModel:
    """A run folder or model.safetensors (with its model.json) -> a TrainedModel in eval mode.

    Its autoguidance guide is `guide` (a run folder or model file) when given, else the run's
    own RUN/guide when there is one.
    """
    state, meta = load_model_file(path)
    where = f"{path}: model.json"
    _check_meta(meta, where)
    try:
        config = config_from_dict(meta["run_config"])
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{where}: run_config is not a valid run config ({err})") from err
    try:
        model = model_from_config(meta["unet"])
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{where}: field 'unet' does not describe a network ({err})") from err
    weights = resolve_model_path(path)[0]
    _check_dtypes(state, model, str(weights))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[1:2] or [str(err)]
        raise ValueError(
            f"{where}: the weights in {weights.name} do not fit the architecture in 'unet' "
            f"({first[0].strip()}); was model.json edited or paired with another model's "
            "weights? Re-export the model"
        ) from err
    codec = None
    if config.data.latent is not None or "autoencoder" in meta:
        codec = codec_for_record(meta.get("autoencoder"), where)
    trained = trained_model(model, config, meta["image_shape"], meta=meta, codec=codec)
    model.to(device).eval()
    if guide is not None:
        if not Path(guide).exists():
            raise FileNotFoundError(
                f"--guide {guide}: no such run folder or model file (the weaker model that "
                "autoguidance steers away from)"
            )
        return replace(trained, guide=load_guide(Path(guide), trained, device=device))
    guide_folder = weights.parent / GUIDE_DIR
    if guide_folder.is_dir() and not guide_folder.is_symlink():
        trained = replace(trained, guide=load_guide(guide_folder, trained, device=device))
    return trained


# The folder inside a run that holds autoguidance's weaker model (SaveGuideCB writes it).
GUIDE_DIR = "guide"


def load_guide(folder: Path, trained: TrainedModel, *, device) -> TrainedModel:
    """The guide model in `folder` (a run folder or model file), checked to share the main
    model's images, schedule and labels (autoguidance mixes the two predictions at the same
    x_t, t and class)."""
    guide = load_trained(folder, device=device)
    where = f"{folder}: the autoguidance guide"
    if guide.image_shape != trained.image_shape or guide.pad != trained.pad:
        raise ValueError(
            f"{where} sees images {guide.image_shape}, the model {trained.image_shape}"
        )
    if not torch.equal(guide.schedule.alpha_bar, trained.schedule.alpha_bar):
        raise ValueError(f"{where} was trained on another noise schedule than the model")
    if (guide.codec is None) != (trained.codec is None):
        raise ValueError(f"{where} and the model differ in pixel against latent space")
    classes = [getattr(m.model, "null_class", None) for m in (guide, trained)]
    if classes[0] != classes[1]:
        raise ValueError(
            f"{where} is {_conditioning(classes[0])}, the model {_conditioning(classes[1])}"
        )
    return guide


def _conditioning(n_classes: int | None) -> str:
    return "unconditional" if n_classes is None else f"conditional on {n_classes} classes"


def _check_dtypes(state: dict[str, torch.Tensor], model: torch.nn.Module, where: str) -> None:
    """Refuse weights of another dtype than the network's: load_state_dict would cast them
    silently (float16 weights would load as a different, rounded model)."""
    expected = model.state_dict()
    for key, tensor in state.items():
        if key in expected and tensor.dtype != expected[key].dtype:
            raise ValueError(
                f"{where}: tensor {key!r} is {str(tensor.dtype).removeprefix('torch.')}, the "
                f"network holds {str(expected[key].dtype).removeprefix('torch.')}; these "
                "weights were converted or damaged: re-export the model"
            )


def _check_meta(meta: dict[str, Any], where: str) -> None:
    """One-line errors for a model.json that lacks a field or holds the wrong type."""
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: expected a JSON object")
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{where}: format is {meta.get('format')!r}, expected {MODEL_FORMAT!r}")
    for key, kind in (("unet", dict), ("run_config", dict), ("image_shape", list)):
        if key not in meta:
            raise ValueError(f"{where}: field {key!r} is missing; re-export the model")
        if not isinstance(meta[key], kind):
            raise ValueError(f"{where}: field {key!r} must be a JSON {kind.__name__}")
    shape = meta["image_shape"]
    if len(shape) != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"{where}: field 'image_shape' must be [C, H, W], got {shape!r}")
