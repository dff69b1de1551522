"""Data sets (Fashion-MNIST, MNIST, CIFAR-10, image folders), verification and in-memory batches.

from difflab.data import load_images, InMemoryBatches
train = load_images("fashion_mnist")              # uint8 (60000, 1, 28, 28), verified
batches = InMemoryBatches(train.images, train.labels, batch_size=256, pad=2)
"""

from difflab.data.batches import InMemoryBatches
from difflab.data.catalog import DATASETS
from difflab.data.checksums import FileCheck
from difflab.data.errors import DatasetError
from difflab.data.loading import ImageSet, fetch, load_images
from difflab.data.locate import cache_dir
from difflab.data.scaling import crop_padding, scale_images, to_uint8

__all__ = [
    "crop_padding",
    "DATASETS",
    "DatasetError",
    "FileCheck",
    "ImageSet",
    "InMemoryBatches",
    "cache_dir",
    "fetch",
    "load_images",
    "scale_images",
    "to_uint8",
]
