"""The packaged Fashion-MNIST feature classifier and its test-set statistics (sha256 verified).

`load_shipped_evaluator()` needs nothing trained locally: weights and reference statistics ship
in difflab/assets. The real-data floor and KID additionally read the Fashion-MNIST images
(difflab.data / $DIFFLAB_DATA); without them FID still works and floor/KID say unavailable.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

META_NAME = "fmnist_classifier.json"


def assets_dir() -> Path:
    return Path(str(resources.files("difflab") / "assets"))


def _verified_bytes(path: Path, sha256: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; rebuild the assets with "
            "`difflab classifier train --dataset fashion_mnist --out src/difflab/assets`"
        )
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ValueError(f"{path}: sha256 {actual} does not match {sha256} recorded in {META_NAME}")
    return data


def load_classifier_meta(folder: str | Path | None = None) -> dict[str, Any]:
    path = Path(folder or assets_dir()) / META_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no shipped feature classifier")
    return json.loads(path.read_text())


def load_feature_model(folder: str | Path | None = None):
    """The packaged classifier as a FeatureModel (eval mode, CPU), weights sha256 verified."""
    from safetensors.torch import load

    from difflab.metrics.evaluator import FeatureModel
    from difflab.models.classifier import FashionClassifier

    folder = Path(folder or assets_dir())
    meta = load_classifier_meta(folder)
    state = load(_verified_bytes(folder / meta["weights_file"], meta["weights_sha256"]))
    model = FashionClassifier.from_config(meta["config"])
    model.load_state_dict(state)
    model.eval()
    return FeatureModel(
        model,
        meta["feature_layer"],
        meta["weights_sha256"],
        dict(meta["preprocessing"]),
        name="fmnist_classifier",
    )


def load_shipped_evaluator(
    folder: str | Path | None = None, *, data_root: str | None = None, with_real_images: bool = True
):
    """ImageEval with the packaged classifier and Fashion-MNIST test-set reference statistics.

    With `with_real_images` (default) the Fashion-MNIST train images (floor) and test images
    (KID) are loaded when available; if they are not, a warning is logged and FID still works.
    """
    from difflab.metrics.evaluator import ImageEval
    from difflab.metrics.reference import load_reference_stats

    folder = Path(folder or assets_dir())
    meta = load_classifier_meta(folder)
    info = meta["reference_stats"]
    reference = load_reference_stats(folder / info["file"], sha256=info["sha256"])
    if reference.meta.get("feature_weights_sha256") != meta["weights_sha256"]:
        raise ValueError(f"{folder}: reference statistics were computed with other weights")
    train_images = test_images = None
    if with_real_images:
        train_images, test_images = _load_real_images(meta, data_root)
    return ImageEval(
        load_feature_model(folder),
        reference,
        real_images=train_images,
        reference_images=test_images,
        dataset=meta["dataset"],
    )


def _load_real_images(meta: dict[str, Any], root: str | None) -> tuple[Any, Any]:
    from difflab.metrics.real_data import data_checksum, load_split

    try:
        train, train_labels = load_split(meta["dataset"], "train", root)
        test, test_labels = load_split(meta["dataset"], "test", root)
    except (FileNotFoundError, ValueError) as err:
        log.warning("real images unavailable (%s): no FID floor and no KID", err)
        return None, None
    if data_checksum(test, test_labels) != meta["data_sha256"]["test"]:
        raise ValueError(
            "the local Fashion-MNIST test split differs from the one the shipped "
            "reference statistics were computed on (data_sha256 mismatch)"
        )
    return train, test
