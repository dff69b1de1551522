"""gzip-compressed IDX files (the MNIST family's format), read into numpy without copies.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian magic 0x000008ND
(0x08 = unsigned byte, ND = number of dimensions), ND uint32 sizes, then the bytes in C order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from difflab.data.errors import DatasetError


def read_gzip(path: Path) -> tuple[bytes, bytes]:
    """(the file's bytes, their gzip-decompressed content); DatasetError when unreadable."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot be read ({err.strerror}).") from err
    try:
        return raw, gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise DatasetError(
            f"{path}: not a complete gzip file ({err}): it is truncated or corrupted. "
            "Delete it and download it again."
        ) from err


def parse_idx(path: Path, content: bytes, *, ndim: int) -> np.ndarray:
    """The uint8 array stored in IDX `content` (decompressed bytes of `path`)."""
    if len(content) < 4:
        raise DatasetError(f"{path}: only {len(content)} bytes, too short for an IDX file.")
    zero, dtype_code, nd = struct.unpack(">HBB", content[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DatasetError(
            f"{path}: magic 0x{content[:4].hex()} is not that of an IDX file of unsigned bytes "
            f"(0x000008{ndim:02x}): this is not an MNIST-style file."
        )
    if nd != ndim:
        what = "images (3 dimensions)" if ndim == 3 else "labels (1 dimension)"
        raise DatasetError(
            f"{path}: has {nd} dimensions where {what} were expected: "
            "are the image and label files swapped?"
        )
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DatasetError(f"{path}: only {len(content)} bytes, too short for its IDX header.")
    dims = struct.unpack(f">{nd}I", content[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(content) - header != size:
        raise DatasetError(
            f"{path}: header promises {'x'.join(map(str, dims))} = {size} bytes "
            f"but {len(content) - header} follow: the file is truncated or padded."
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)
