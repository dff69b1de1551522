"""What the known data sets are made of: file names, checksums, sizes, classes, sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileSpec:
    """One file of a known data set, as its publisher distributes it."""

    name: str
    md5: str
    """md5 of the file exactly as published (what a download must match)."""
    content_md5: str | None = None
    """md5 of the decompressed content, which a repackaged .gz (other gzip header) still has."""


@dataclass(frozen=True)
class SplitSpec:
    """The files of one split and how many images they hold."""

    files: tuple[FileSpec, ...]
    count: int


@dataclass(frozen=True)
class DatasetSpec:
    """A data set that `load_images` knows by name."""

    name: str
    kind: str  # "idx" (gzip IDX pairs) or "cifar" (python pickle batches)
    shape: tuple[int, int, int]  # (C, H, W)
    classes: tuple[str, ...]
    splits: dict[str, SplitSpec]
    folder_names: tuple[str, ...]  # sub-folders of a data root that may hold the files
    url: str  # canonical base URL; the file name is appended
    archive: FileSpec | None = None  # what is downloaded when it is not the files themselves


# --- Fashion-MNIST, Xiao, Rasul & Vollgraf 2017 (MIT licence) ---
# File md5s from the upstream README; content md5s computed from those verified files
# (`zcat FILE | md5sum`). The content md5s let Debian's `dataset-fashion-mnist` (same data, other
# gzip headers) pass verification.
FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    kind="idx",
    shape=(1, 28, 28),
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    splits={
        "train": SplitSpec(
            files=(
                FileSpec(
                    "train-images-idx3-ubyte.gz",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                ),
                FileSpec(
                    "train-labels-idx1-ubyte.gz",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "9018921c3c673c538a1fc5bad174d6f9",
                ),
            ),
            count=60_000,
        ),
        "test": SplitSpec(
            files=(
                FileSpec(
                    "t10k-images-idx3-ubyte.gz",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "8181f5470baa50b63fa0f6fddb340f0a",
                ),
                FileSpec(
                    "t10k-labels-idx1-ubyte.gz",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "15d484375f8d13e6eb1aabb0c3f46965",
                ),
            ),
            count=10_000,
        ),
    },
    folder_names=("fashion-mnist", "fashion_mnist", "FashionMNIST", "FashionMNIST/raw"),
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)

# --- MNIST, LeCun, Cortes & Burges; files as mirrored by PyTorch's ossci bucket ---
# Only the published .gz md5s are known here (no content md5s): a re-compressed MNIST file is
# refused unless its md5 is passed in `checksums=`.
MNIST = DatasetSpec(
    name="mnist",
    kind="idx",
    shape=(1, 28, 28),
    classes=tuple(str(d) for d in range(10)),
    splits={
        "train": SplitSpec(
            files=(
                FileSpec("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                FileSpec("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ),
            count=60_000,
        ),
        "test": SplitSpec(
            files=(
                FileSpec("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                FileSpec("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
            ),
            count=10_000,
        ),
    },
    folder_names=("mnist", "MNIST", "MNIST/raw"),
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
)

# --- CIFAR-10, Krizhevsky 2009: python pickle batches inside cifar-10-python.tar.gz ---
# Batch md5s as published by the dataset page (and used by torchvision).
CIFAR10_META = FileSpec("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")
CIFAR10 = DatasetSpec(
    name="cifar10",
    kind="cifar",
    shape=(3, 32, 32),
    classes=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    splits={
        "train": SplitSpec(
            files=(
                FileSpec("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                FileSpec("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                FileSpec("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                FileSpec("data_batch_4", "634d18415352ddfa80567beed471001a"),
                FileSpec("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
                CIFAR10_META,
            ),
            count=50_000,
        ),
        "test": SplitSpec(
            files=(FileSpec("test_batch", "40351d587109b95175f43aff81a1287e"), CIFAR10_META),
            count=10_000,
        ),
    },
    folder_names=("cifar-10-batches-py", "cifar10", "cifar-10", "cifar10/cifar-10-batches-py"),
    url="https://www.cs.toronto.edu/~kriz/",
    archive=FileSpec("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
)

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (FASHION_MNIST, MNIST, CIFAR10)}
ALIASES = {"fmnist": "fashion_mnist", "fashion-mnist": "fashion_mnist", "cifar-10": "cifar10"}


def find_spec(name: str) -> DatasetSpec | None:
    """The spec of a known data set by name or alias, or None for anything else (a folder)."""
    key = name.lower()
    return DATASETS.get(ALIASES.get(key, key))
