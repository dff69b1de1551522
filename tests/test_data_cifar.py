"""difflab.data.load_images on CIFAR-10 in its python pickle format, made here: loaded from a
folder and a .tar.gz, and refused (never unpickled) when the pickle names other globals."""

from __future__ import annotations

import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from data_places import isolated_places, md5  # noqa: F401 (autouse fixture)

from difflab.data import DatasetError, load_images

# --- CIFAR-10 in its python pickle format, made here ---


def py2_pickle(obj) -> bytes:
    """Protocol-2 bytes as Python 2's cPickle wrote CIFAR-10: str as (SHORT_)BINSTRING, arrays
    through numpy.core.multiarray._reconstruct (Python 3 would add _codecs.encode calls)."""
    out = bytearray(b"\x80\x02")
    emit_py2(obj, out)
    return bytes(out + b".")


def emit_py2(o, out: bytearray) -> None:
    if o is None or isinstance(o, bool):
        out += {None: b"N", True: b"\x88", False: b"\x89"}[o]
    elif isinstance(o, int):
        out += b"J" + struct.pack("<i", o)
    elif isinstance(o, str | bytes):
        b = o.encode("latin1") if isinstance(o, str) else o
        out += (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b
    elif isinstance(o, tuple | list | dict):
        out += {tuple: b"(", list: b"](", dict: b"}("}[type(o)]
        for item in o.items() if isinstance(o, dict) else o:
            for part in item if isinstance(o, dict) else (item,):
                emit_py2(part, out)
        out += {tuple: b"t", list: b"e", dict: b"u"}[type(o)]
    elif isinstance(o, np.ndarray):
        out += b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n"
        emit_py2((0,), out)
        emit_py2("b", out)
        out += b"tR(J\x01\x00\x00\x00"
        emit_py2(o.shape, out)
        out += b"cnumpy\ndtype\n"
        emit_py2(("u1", 0, 1), out)
        out += b"R"
        emit_py2((3, "|", None, None, None, -1, -1, 0), out)
        out += b"b\x89"
        emit_py2(o.tobytes(), out)
        out += b"tb"
    else:
        raise TypeError(type(o))


CIFAR_NAMES = [
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
]


def make_cifar(folder: Path, n: int = 4) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """cifar-10-batches-py with n images per batch; returns ({file: data}, checksums)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    meta = {"num_cases_per_batch": n, "label_names": CIFAR_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    data = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data[name] = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(n)]
        batch = {
            "batch_label": f"batch {i}",
            "labels": labels,
            "data": data[name],
            "filenames": [f"img_{j}.png" for j in range(n)],
        }
        (folder / name).write_bytes(py2_pickle(batch))
    return data, {p.name: md5(p) for p in folder.iterdir()}


def test_cifar_folder_in_the_real_pickle_format(tmp_path):
    data, sums = make_cifar(tmp_path / "cifar-10-batches-py")
    train = load_images("cifar10", root=tmp_path, checksums=sums)
    assert train.images.shape == (20, 3, 32, 32) and train.classes == CIFAR_NAMES
    # channel-major rows: 1024 red, then 1024 green, then 1024 blue values, 32 per row
    row = data["data_batch_2"][1]
    np.testing.assert_array_equal(train.images[5, 1], row[1024:2048].reshape(32, 32))
    assert train.labels[:5].tolist() == [0, 1, 2, 3, 1]
    test = load_images("cifar10", "test", root=tmp_path / "cifar-10-batches-py", checksums=sums)
    np.testing.assert_array_equal(test.images.reshape(4, -1), data["test_batch"])
    with pytest.raises(DatasetError, match="data_batch_1: md5 is .* not c99cafc1"):
        load_images("cifar10", root=tmp_path)


def test_cifar_tar_gz(tmp_path):
    data, sums = make_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    for root in (tmp_path, archive):
        test = load_images("cifar10", "test", root=root, checksums=sums)
        np.testing.assert_array_equal(test.images.reshape(4, -1), data["test_batch"])
        assert test.source == str(archive)
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz: not a complete tar archive"):
        load_images("cifar10", root=archive, checksums=sums)


def test_cifar_pickle_with_other_globals_is_refused(tmp_path):
    _, sums = make_cifar(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    evil.write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    sums["data_batch_3"] = md5(evil)  # even a file whose md5 was vouched for is not trusted
    with pytest.raises(
        DatasetError, match=r"data_batch_3: not a CIFAR-10 batch \(refused .*system"
    ):
        load_images("cifar10", root=tmp_path, checksums=sums)
    assert not marker.exists()


def test_cifar_resaved_by_python3_and_truncated(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    data, sums = make_cifar(folder)
    batch = {"labels": [1, 2, 3, 4], "data": data["test_batch"]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    sums["test_batch"] = md5(folder / "test_batch")
    assert load_images("cifar10", "test", root=folder, checksums=sums).labels.tolist() == [
        1,
        2,
        3,
        4,
    ]
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:500])
    sums["test_batch"] = md5(folder / "test_batch")
    with pytest.raises(DatasetError, match="test_batch: unreadable pickle.*truncated"):
        load_images("cifar10", "test", root=folder, checksums=sums)
