"""Feature models for domain FID/KID: classifier weights + a JSON card + reference statistics.

A feature model is a folder holding
    weights.safetensors    the classifier (sha256 in the card)
    reference.safetensors  float64 mean/covariance of the test split's features (sha256 in card)
    card.json              dataset identity (name + sha256 of its data, see real_data.py), image
                           shape and pixel range, classes, test accuracy, feature dimension,
                           real-data floor at n=2048, training config and wall time.
Trained ones live in the registry, `$DIFFLAB_CACHE/feature-models/<name>-<sha12>/` (else
~/.cache/difflab/feature-models); the shipped Fashion-MNIST model (difflab/assets, whose JSON
is a card too) is the built-in entry, and the default for Fashion-MNIST.

    evaluator = load_feature_evaluator("mnist", image_shape=(1, 28, 28))   # an ImageEval

A model is only ever used for the data it was trained on: a missing model, another dataset
identity or another image shape raise FeatureModelError with the command that fixes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflab.files import atomic_write_bytes, atomic_write_json, sha256_file
from difflab.metrics.real_data import LabelledData, identity_from_checksums, load_labelled

log = logging.getLogger(__name__)

CARD_NAME = "card.json"
WEIGHTS_NAME = "weights.safetensors"
STATS_NAME = "reference.safetensors"
FEATURE_LAYER = "pool"
FLOOR_N = 2048  # the evaluation's usual n (EvalConfig.n)
BUILTIN_ID = "builtin:fashion_mnist"


class FeatureModelError(ValueError):
    """No usable feature model for the data; the one-line message names the fix."""


def registry_dir() -> Path:
    """$DIFFLAB_CACHE/feature-models, else ~/.cache/difflab/feature-models."""
    root = os.environ.get("DIFFLAB_CACHE") or Path.home() / ".cache" / "difflab"
    return Path(root).expanduser() / "feature-models"


def model_id(identity: dict[str, str]) -> str:
    """Folder name of a dataset's model: its name (made file-safe) and 12 hex of its sha256."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", identity["name"]).strip("._") or "data"
    return f"{name}-{identity['sha256'][:12]}"


@dataclass(frozen=True)
class FeatureModelEntry:
    """A feature model on disk: its folder and card (not loaded until `load_*`)."""

    id: str
    folder: Path
    card: dict[str, Any]
    card_name: str = CARD_NAME
    builtin: bool = False

    @property
    def identity(self) -> dict[str, str]:
        card = self.card
        return card.get("identity") or identity_from_checksums(card["dataset"], card["data_sha256"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        pre = self.card["preprocessing"]
        return (int(pre["channels"]), int(pre["height"]), int(pre["width"]))

    def describe(self) -> dict[str, Any]:
        """What a result should name: model id, weights hash, its reference and dataset."""
        return {
            "id": self.id,
            "weights_sha256": self.card["weights_sha256"],
            "reference_sha256": self.card["reference_stats"]["sha256"],
            "reference_split": self.card["reference_stats"]["split"],
            "reference_n": self.card["reference_stats"]["n"],
            "dataset": self.identity,
        }

    def load_model(self):
        """The classifier as a metrics FeatureModel (eval mode, CPU), weights sha256 verified."""
        from safetensors.torch import load

        from difflab.metrics.evaluator import FeatureModel
        from difflab.models.classifier import ImageClassifier

        card = self.card
        data = verified_bytes(self.folder / card["weights_file"], card["weights_sha256"], self)
        model = ImageClassifier.from_config(card["config"])
        model.load_state_dict(load(data))
        model.eval()
        name = "fmnist_classifier" if self.builtin else self.id
        return FeatureModel(
            model, card["feature_layer"], card["weights_sha256"], dict(card["preprocessing"]), name
        )

    def load_reference(self):
        """The test split's float64 statistics, sha256 verified, tied to these weights."""
        from difflab.metrics.reference import load_reference_stats

        info = self.card["reference_stats"]
        reference = load_reference_stats(self.folder / info["file"], sha256=info["sha256"])
        if reference.meta.get("feature_weights_sha256") != self.card["weights_sha256"]:
            raise FeatureModelError(
                f"{self.folder}: reference statistics were computed with other weights; "
                f"rebuild it: {self.card.get('rebuild', 'difflab classifier train')}"
            )
        return reference


def verified_bytes(path: Path, sha256: str, entry: FeatureModelEntry) -> bytes:
    rebuild = entry.card.get("rebuild", "difflab classifier train")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `{rebuild}`")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()  # of the bytes loaded, not a second read
    if actual != sha256:
        raise ValueError(
            f"{path}: sha256 {actual} does not match {sha256} recorded in {entry.card_name}"
        )
    return data


def read_entry(folder: Path, *, card_name: str = CARD_NAME, builtin: bool = False):
    path = folder / card_name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a feature model folder")
    card = json.loads(path.read_text())
    return FeatureModelEntry(card.get("id", BUILTIN_ID), folder, card, card_name, builtin)


# The packaged Fashion-MNIST classifier (difflab/assets): the registry's built-in entry.
SHIPPED_CARD = "fmnist_classifier.json"


def assets_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("difflab") / "assets"))


def builtin_entry() -> FeatureModelEntry | None:
    try:
        entry = read_entry(assets_dir(), card_name=SHIPPED_CARD, builtin=True)
    except FileNotFoundError:
        return None
    return FeatureModelEntry(BUILTIN_ID, entry.folder, entry.card, SHIPPED_CARD, builtin=True)


def list_feature_models(registry: str | Path | None = None) -> list[FeatureModelEntry]:
    """The built-in entry, then the registry's models sorted by id (unreadable ones skipped)."""
    entries = [e for e in [builtin_entry()] if e is not None]
    folder = Path(registry) if registry is not None else registry_dir()
    if folder.is_dir():
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
            try:
                entries.append(read_entry(sub))
            except (FileNotFoundError, ValueError) as err:
                log.warning("skipping %s: %s", sub, err)
    return entries


# --- lookup ---------------------------------------------------------------------------------


def find_feature_model(
    dataset: str,
    *,
    image_shape: tuple[int, ...],
    data_root: str | None = None,
    model_id: str | None = None,
    registry: str | Path | None = None,
) -> FeatureModelEntry:
    """The feature model for `dataset` (name or folder) and images of `image_shape` (C, H, W):
    `model_id` if given, else the built-in one for Fashion-MNIST, else the registry's."""
    return _resolve(dataset, image_shape, data_root, model_id, registry)[0]


def load_feature_evaluator(
    dataset: str,
    *,
    image_shape: tuple[int, ...],
    data_root: str | None = None,
    model_id: str | None = None,
    registry: str | Path | None = None,
    with_real_images: bool = True,
):
    """ImageEval (as load_shipped_evaluator's) with the dataset's feature model and reference;
    the floor uses the train split, KID the test split's images."""
    from difflab.metrics.evaluator import ImageEval

    entry, data = _resolve(dataset, image_shape, data_root, model_id, registry)
    real = data if with_real_images else None
    return ImageEval(
        entry.load_model(),
        entry.load_reference(),
        real_images=None if real is None else real.train_images,
        reference_images=None if real is None else real.test_images,
        dataset=entry.card["dataset"] if entry.builtin else entry.id,
    )


def require_feature_model(dataset: str, *, registry: str | Path | None = None) -> None:
    """FeatureModelError (naming the fix) unless some feature model exists for `dataset`'s
    name; reads no data, so a long job can check this before it starts."""
    from difflab.data.catalog import find_spec

    spec = find_spec(dataset)
    name = spec.name if spec is not None else Path(dataset).name
    if not any(e.identity["name"] == name for e in list_feature_models(registry)):
        raise FeatureModelError(
            f"no feature model for {name}: run `difflab classifier train --dataset {dataset}`"
        )


def _resolve(dataset, image_shape, data_root, model_id, registry):
    from difflab.data.catalog import find_spec

    fix = f"run `difflab classifier train --dataset {dataset}`"
    spec = find_spec(dataset)
    name = spec.name if spec is not None else Path(dataset).name
    entries = list_feature_models(registry)
    if model_id is not None:
        chosen = [e for e in entries if e.id == model_id]
        if not chosen:
            raise FeatureModelError(
                f"no feature model {model_id!r}: `difflab classifier ls` lists them, or {fix}"
            )
        if chosen[0].identity["name"] != name:
            raise FeatureModelError(
                f"feature model {model_id} is for {chosen[0].identity['name']}, not {name}: {fix}"
            )
    else:
        chosen = [e for e in entries if e.identity["name"] == name]
        if not chosen:  # before reading any data: a missing model must not start a download
            raise FeatureModelError(f"no feature model for {name}: {fix}")
    data = _load_data(dataset, data_root)
    identity = None if data is None else data.identity
    if identity is not None:
        same = [e for e in chosen if e.identity["sha256"] == identity["sha256"]]
        if not same:
            other = chosen[0]
            raise FeatureModelError(
                f"feature model {other.id} was trained on other data than {dataset} here "
                f"(dataset sha256 {other.identity['sha256'][:12]} vs "
                f"{identity['sha256'][:12]}): {fix}"
            )
        chosen = same
    entry = chosen[0]  # the built-in comes first
    want = tuple(int(d) for d in image_shape)
    if want != entry.image_shape:
        c, h, w = entry.image_shape
        raise FeatureModelError(
            f"feature model {entry.id} takes {c}-channel {h}x{w} images but these are "
            f"{'x'.join(map(str, want))} (C x H x W): crop any padding, or {fix} on this data"
        )
    return entry, data


def _load_data(dataset: str, data_root: str | None) -> LabelledData | None:
    """Both splits (to check the identity and for floor/KID); None when a known data set's
    files are unavailable (then FID works, unverified, and floor/KID are unavailable)."""
    from difflab.data.catalog import find_spec

    try:
        return load_labelled(dataset, data_root)
    except (FileNotFoundError, ValueError) as err:
        if find_spec(dataset) is None:
            raise
        log.warning(
            "%s unavailable (%s): identity unverified, no FID floor and no KID", dataset, err
        )
        return None


# --- writing --------------------------------------------------------------------------------


def save_feature_model(
    model,
    record: dict[str, Any],
    data: LabelledData,
    *,
    registry: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write weights, the test split's reference statistics and the card (last: it holds both
    sha256s, so a reader never mixes a half-replaced model) into `out` or the registry."""
    import torch
    from safetensors.torch import save

    identity = data.identity
    mid = model_id(identity)
    folder = Path(out) if out is not None else Path(registry or registry_dir()) / mid
    folder.mkdir(parents=True, exist_ok=True)
    model = model.to(memory_format=torch.contiguous_format).cpu().eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_NAME, save(state))
    weights_sha = sha256_file(folder / WEIGHTS_NAME)
    config = record["train_config"]
    c, h, w = data.image_shape
    pre = {"low": config["low"], "high": config["high"], "pad": 0, "height": h, "width": w,
           "channels": c}  # fmt: skip
    reference, floor = _statistics(model, weights_sha, pre, data, folder, mid, progress)
    card = {
        "id": mid,
        "architecture": "difflab.models.classifier.ImageClassifier",
        "config": model.config(),
        "feature_layer": FEATURE_LAYER,
        "feature_dim": model.feature_dim,
        "preprocessing": pre,
        "image_shape": [c, h, w],
        "pixel_range": [config["low"], config["high"]],
        "dataset": data.name,
        "identity": identity,
        "test_split": data.test_split,
        "classes": list(data.classes),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": weights_sha,
        "reference_stats": {
            "file": STATS_NAME,
            "sha256": sha256_file(folder / STATS_NAME),
            "split": "test",
            "n": reference.n,
            "dtype": "float64",
        },  # fmt: skip
        "real_floor": floor,
        "rebuild": f"difflab classifier train --dataset {config['dataset']}",
        **record,
    }
    atomic_write_json(folder / CARD_NAME, card)
    log.info("feature model %s written to %s", mid, folder)
    return card


def _statistics(model, weights_sha, pre, data, folder, mid, progress):
    """Reference statistics of the test split (saved) and the floor at n=2048 (or all train
    images when there are fewer) against them."""
    from difflab.metrics.evaluator import FeatureModel, ImageEval
    from difflab.metrics.features import feature_statistics
    from difflab.metrics.reference import ReferenceStats, save_reference_stats

    feature_model = FeatureModel(model, FEATURE_LAYER, weights_sha, pre, mid)
    mu, sigma = feature_statistics(feature_model.features(data.test_images, progress=progress))
    meta = {"dataset": data.name, "identity": data.identity, "split": "test",
            "n": len(data.test_images), "feature_weights_sha256": weights_sha,
            "layer": FEATURE_LAYER, "preprocessing": pre}  # fmt: skip
    save_reference_stats(folder / STATS_NAME, mu, sigma, meta=meta)
    reference = ReferenceStats(mu, sigma, meta)
    n = min(FLOOR_N, len(data.train_images))
    evaluator = ImageEval(feature_model, reference, real_images=data.train_images, dataset=mid)
    return reference, {"n": n, "fid": evaluator.fid_floor(n), "split": "train", "seed": 0}
