"""Inception-v3 as used by pytorch-fid (FID's original TF graph, ported), for 2048-d pool3 features.

The block structure and parameter names follow torchvision's `Inception3` with pytorch-fid's
`FIDInceptionA/C/E_1/E_2` replacements (avg-pool without padded zeros; max-pool in the last
block), so the state dict of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` loads as is.
Reference: Szegedy et al. 2016, "Rethinking the Inception Architecture", Fig. 5-7; pytorch-fid
(mseitzer) `inception.py`.

Weights are never downloaded: the user passes the file (`--inception-weights PATH`). It is a
torch pickle, so it is read with `torch.load(weights_only=True)` (tensors only, no code) after
its sha256 is checked against the prefix in its name (as torch.hub does) or a given digest.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difflab.files import sha256_file

WEIGHTS_FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    # FID's TF graph averages over real pixels only (count_include_pad=False).
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, c_in: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_2(self.branch7x7dbl_1(x))
        d = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(d)))
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """pytorch-fid's FIDInceptionE_1 (avg pool, `max_pool=False`) and E_2 (`max_pool=True`)."""

    def __init__(self, c_in: int, *, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(c_in, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        # The TF graph's last block max-pools here (a bug there, kept for comparable numbers).
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Input: images in [0, 1], (B, 1 or 3, H, W), any size; `pool` output: (B, 2048)."""

    def __init__(self, n_classes: int = 1008) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEATURE_DIM, n_classes)  # unused for FID; present in the weights

    def preprocess(self, x: Tensor) -> Tensor:
        """[0, 1] grayscale or RGB -> 3 channels, bilinear 299x299, scaled to [-1, 1]."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def forward(self, x: Tensor) -> Tensor:
        x = self.preprocess(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return self.pool(x).flatten(1)  # (B, 2048): pool3 features


def _check_sha256(path: Path, sha256: str | None) -> str:
    digest = sha256_file(path)
    if sha256 is not None:
        expected = sha256.lower()
    else:
        match = re.search(r"-([a-f0-9]{8,})\.pth?$", path.name)
        if match is None:
            raise ValueError(
                f"{path}: no sha256 given and none in the file name "
                f"(expected a name like {WEIGHTS_FILE_NAME}); pass sha256="
            )
        expected = match.group(1)
    if not digest.startswith(expected):
        raise ValueError(
            f"{path}: sha256 {digest} does not start with {expected}; "
            f"not the pytorch-fid Inception weights ({WEIGHTS_FILE_NAME})"
        )
    return digest


def _load_tensors_only(path: Path) -> dict[str, Tensor]:
    """torch.load(weights_only=True): a pickle that names any code is refused, not run."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: refused to unpickle it (it holds more than tensors, so it is not "
            f"pytorch-fid's {WEIGHTS_FILE_NAME}): {str(err).splitlines()[0]}"
        ) from err


def load_fid_inception(
    path: str | Path, *, sha256: str | None = None
) -> tuple[FIDInceptionV3, str]:
    """Build FIDInceptionV3 from pytorch-fid's weights file given by the user.

    Returns the model (eval mode) and the file's full sha256. Nothing is downloaded.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception weights not found: {path} (pytorch-fid's "
            f"{WEIGHTS_FILE_NAME}; difflab never downloads it for you)"
        )
    digest = _check_sha256(path, sha256)
    state = _load_tensors_only(path)
    model = FIDInceptionV3()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Only BatchNorm step counters may differ between torch versions; anything else is wrong.
    bad = [k for k in [*missing, *unexpected] if not k.endswith("num_batches_tracked")]
    if bad:
        raise ValueError(
            f"{path}: not a pytorch-fid Inception state dict (mismatched keys "
            f"{bad[:5]}{'...' if len(bad) > 5 else ''})"
        )
    return model.eval(), digest


class DataRangeInception(nn.Module):
    """Maps images from the diffusion data range [low, high] to [0, 1] for FIDInceptionV3."""

    def __init__(self, inception: FIDInceptionV3, *, low: float, high: float) -> None:
        super().__init__()
        self.inception, self.low, self.high = inception, low, high

    def forward(self, x: Tensor) -> Tensor:
        return self.inception((x - self.low) / (self.high - self.low))


def inception_feature_model(
    inception: FIDInceptionV3, weights_sha256: str, *, low: float = -0.5, high: float = 0.5
):
    """A FeatureModel reading Inception's 2048-d pool3 features of images in [low, high]."""
    from difflab.metrics.evaluator import FeatureModel

    preprocessing = {
        "low": low,
        "high": high,
        "resize": 299,
        "interpolation": "bilinear",
        "channels": 3,
        "input": "[0, 1] -> [-1, 1]",
    }
    module = DataRangeInception(inception, low=low, high=high).eval()
    return FeatureModel(
        module, "inception.pool", weights_sha256, preprocessing, name="inception_v3_pytorch_fid"
    )


def load_inception_evaluator(
    weights_path: str | Path,
    *,
    dataset: str = "fashion_mnist",
    data_root: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
):
    """ImageEval with pytorch-fid's Inception (user-given weights) against `dataset`'s test split.

    Test-set statistics are computed once (slow on CPU: ~10k images at 299x299) and cached.
    """
    import numpy as np

    from difflab.metrics.evaluator import ImageEval
    from difflab.metrics.features import feature_statistics
    from difflab.metrics.real_data import load_split
    from difflab.metrics.reference import cache_key, cached_reference_stats

    inception, digest = load_fid_inception(weights_path, sha256=sha256)
    feature_model = inception_feature_model(inception, digest)
    train, _ = load_split(dataset, "train", data_root)
    test, _ = load_split(dataset, "test", data_root)
    key = cache_key(
        weights_sha256=digest,
        preprocessing=feature_model.preprocessing,
        dataset=dataset,
        split="test",
        n=len(test),
    )

    def compute() -> tuple[np.ndarray, np.ndarray]:
        return feature_statistics(feature_model.features(test, batch_size=50, progress=progress))

    meta = {
        "dataset": dataset,
        "split": "test",
        "n": len(test),
        "feature_weights_sha256": digest,
        "preprocessing": feature_model.preprocessing,
    }
    reference = cached_reference_stats(key, compute, meta=meta)
    return ImageEval(
        feature_model, reference, real_images=train, reference_images=test, dataset=dataset
    )
