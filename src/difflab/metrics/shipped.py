"""The packaged Fashion-MNIST feature classifier and its test-set statistics (sha256 verified).

`load_shipped_evaluator()` needs nothing trained locally: weights and reference statistics ship
in difflab/assets. The real-data floor and KID additionally read the Fashion-MNIST images
(difflab.data / $DIFFLAB_DATA); without them FID still works and floor/KID say unavailable.
Its JSON is a feature-model card (metrics/feature_models.py): this is the registry's built-in
entry, read by the same code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from difflab.metrics.feature_models import SHIPPED_CARD as META_NAME
from difflab.metrics.feature_models import assets_dir, read_entry

log = logging.getLogger(__name__)


def _entry(folder: str | Path | None):
    folder = Path(folder or assets_dir())
    if not (folder / META_NAME).is_file():
        raise FileNotFoundError(f"{folder / META_NAME} not found: no shipped feature classifier")
    return read_entry(folder, card_name=META_NAME, builtin=True)


def load_classifier_meta(folder: str | Path | None = None) -> dict[str, Any]:
    return _entry(folder).card


def load_feature_model(folder: str | Path | None = None):
    """The packaged classifier as a FeatureModel (eval mode, CPU), weights sha256 verified."""
    return _entry(folder).load_model()


def load_shipped_evaluator(
    folder: str | Path | None = None, *, data_root: str | None = None, with_real_images: bool = True
):
    """ImageEval with the packaged classifier and Fashion-MNIST test-set reference statistics.

    With `with_real_images` (default) the Fashion-MNIST train images (floor) and test images
    (KID) are loaded when available; if they are not, a warning is logged and FID still works.
    """
    from difflab.metrics.evaluator import ImageEval

    entry = _entry(folder)
    train_images = test_images = None
    if with_real_images:
        train_images, test_images = _load_real_images(entry.card, data_root)
    return ImageEval(
        entry.load_model(),
        entry.load_reference(),
        real_images=train_images,
        reference_images=test_images,
        dataset=entry.card["dataset"],
    )


def _load_real_images(meta: dict[str, Any], root: str | None) -> tuple[Any, Any]:
    from difflab.metrics.real_data import data_checksum, load_split

    try:
        train, _ = load_split(meta["dataset"], "train", root)
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
