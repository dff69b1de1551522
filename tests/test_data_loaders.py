"""difflab.data.load_images on the real Fashion-MNIST and on MNIST/CIFAR-10/folders it makes."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from data_places import isolated_places, md5  # noqa: F401 (autouse fixture)

from difflab.data import DatasetError, load_images
from difflab.data import locate as locate_module

REPO = Path(__file__).resolve().parents[1]
FMNIST_CLASSES = 10


@pytest.fixture(scope="module")
def shared_data() -> Path:
    """The offline data folder: $DIFFLAB_DATA, else ../shared/datasets as CI sets it."""
    folder = Path(os.environ.get("DIFFLAB_DATA") or REPO.parent / "shared" / "datasets")
    if not (folder / "fashion-mnist").is_dir():
        pytest.fail(f"real Fashion-MNIST is missing: no {folder}/fashion-mnist (set DIFFLAB_DATA)")
    return folder


def write_idx_gz(path: Path, array: np.ndarray, *, mtime: int = 0) -> None:
    """An IDX file (big-endian magic 0x000008ND, sizes, bytes), gzip-compressed."""
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=mtime))


def make_mnist(folder: Path, n: int = 30, *, prefix: str = "train", seed: int = 0):
    """Small MNIST-format files; returns (images (n,28,28), labels, checksums of the files)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    sums = {p.name: md5(p) for p in folder.glob(f"{prefix}-*.gz")}
    return images, labels, sums


# --- real Fashion-MNIST ---


def test_real_fashion_mnist_train_and_test(shared_data):
    train = load_images("fashion_mnist", "train", root=shared_data)
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.shape == (60_000,) and train.labels.dtype == torch.int64
    assert list(train.class_counts().values()) == [6000] * FMNIST_CLASSES
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    assert [c.matched for c in train.checks] == ["published", "published"]
    assert train.checks[0].md5 == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    test = load_images("fmnist", "test", root=shared_data / "fashion-mnist")
    assert test.images.shape == (10_000, 1, 28, 28)
    assert list(test.class_counts().values()) == [1000] * FMNIST_CLASSES


def test_found_through_difflab_data_and_root_wins(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFLAB_DATA", str(shared_data))
    test = load_images("fashion_mnist", "test", download=False)
    assert test.source == str(shared_data / "fashion-mnist")
    # files directly in DIFFLAB_DATA count too
    monkeypatch.setenv("DIFFLAB_DATA", str(shared_data / "fashion-mnist"))
    assert load_images("fashion_mnist", "test", download=False).source.endswith("fashion-mnist")
    # an explicit root is authoritative: missing files there are an error, not a fall-back
    with pytest.raises(DatasetError, match="holds no fashion_mnist test files"):
        load_images("fashion_mnist", "test", root=tmp_path)


def test_repackaged_gzip_is_accepted_by_content_md5(shared_data, tmp_path, monkeypatch):
    """Debian's dataset-fashion-mnist re-compresses the files: other bytes, same content."""
    src = shared_data / "fashion-mnist"
    debian = tmp_path / "system" / "fashion-mnist"
    debian.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        content = gzip.decompress((src / name).read_bytes())
        (debian / name).write_bytes(gzip.compress(content, compresslevel=1, mtime=1234567))
        assert md5(debian / name) != md5(src / name)
    monkeypatch.setattr(locate_module, "SYSTEM_DIRS", (tmp_path / "system",))
    test = load_images("fashion_mnist", "test", download=False)
    assert test.source == str(debian) and {c.matched for c in test.checks} == {"content"}
    reference = load_images("fashion_mnist", "test", root=src)
    np.testing.assert_array_equal(test.images, reference.images)
    # one changed pixel in a well-formed gzip is caught by the content md5
    content = bytearray(gzip.decompress((src / "t10k-images-idx3-ubyte.gz").read_bytes()))
    content[5000] ^= 1
    changed = gzip.compress(bytes(content), compresslevel=1, mtime=1)
    (debian / "t10k-images-idx3-ubyte.gz").write_bytes(changed)
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz: md5 is"):
        load_images("fashion_mnist", "test", download=False)


def test_cli_info_json(shared_data, monkeypatch, capsys):
    from difflab.cli.main import main

    monkeypatch.setenv("DIFFLAB_DATA", str(shared_data))
    assert main(["data", "info", "fashion_mnist", "--split", "test", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["images"]["shape"] == [10_000, 1, 28, 28]
    assert report["class_counts"]["Bag"] == 1000
    assert [f["md5"] for f in report["files"]] == [
        "bef4ecab320f06d8554ea6380940ec79",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ]
    assert main(["data", "info", "mnist"]) == 2  # not there, not downloaded: one error line
    assert "mnist train: not found" in capsys.readouterr().err


# --- MNIST-format files made here ---


def test_generated_mnist_loads_with_given_checksums(tmp_path):
    images, labels, sums = make_mnist(tmp_path / "mnist")
    ds = load_images("mnist", root=tmp_path, checksums=sums)
    np.testing.assert_array_equal(ds.images[:, 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.classes == [str(d) for d in range(10)] and {c.matched for c in ds.checks} == {"given"}
    ds.images[0, 0, 0, 0] = 1  # the arrays are the caller's to change


def test_generated_mnist_fails_the_published_checksums(tmp_path):
    make_mnist(tmp_path)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz: md5 is \w+, not f68b3c2d"):
        load_images("mnist", root=tmp_path)


def test_truncated_gzip_names_the_file(tmp_path):
    *_, sums = make_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=f"{path}: not a complete gzip file.*truncated"):
        load_images("mnist", root=tmp_path, checksums=sums)


def test_bit_flip_is_caught(tmp_path):
    *_, sums = make_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=str(path)):
        load_images("mnist", root=tmp_path, checksums=sums)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((4, 28, 28)), np.zeros(4), None),
        (np.zeros((4, 28, 28)), np.full(4, 10), "labels range 0..10|labels range 10..10"),
        (np.zeros((4, 28, 28)), np.zeros(5), "4 images but 5 labels"),
        (np.zeros((4, 27, 27)), np.zeros(4), r"images are \(1, 27, 27\)"),
        (np.zeros(4), np.zeros(4), "has 1 dimensions where images"),
    ],
)
def test_idx_structure_is_checked(tmp_path, images, labels, message):
    write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    sums = {p.name: md5(p) for p in tmp_path.glob("*.gz")}
    if message is None:
        assert len(load_images("mnist", root=tmp_path, checksums=sums)) == 4
    else:
        with pytest.raises(DatasetError, match=message):
            load_images("mnist", root=tmp_path, checksums=sums)


def test_bad_magic_and_short_body(tmp_path):
    *_, sums = make_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + content[4:]))
    with pytest.raises(DatasetError, match=f"{path}: magic 0x00000d03"):
        load_images("mnist", root=tmp_path)
    path.write_bytes(gzip.compress(content[:-28]))
    with pytest.raises(DatasetError, match="30x28x28 = 23520 bytes but 23492 follow"):
        load_images("mnist", root=tmp_path)


def test_incomplete_split_and_unknown_names(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="not train-labels-idx1-ubyte.gz.*incomplete"):
        load_images("mnist", root=tmp_path)
    with pytest.raises(DatasetError, match="neither a known data set"):
        load_images(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="split must be"):
        load_images("mnist", "valid", root=tmp_path)


def test_search_order_root_env_cache_system(tmp_path, monkeypatch):
    places = {n: tmp_path / n for n in ("root", "env", "cache", "system")}
    sums = {}
    for i, (name, folder) in enumerate(places.items()):
        sub = folder / "mnist" if name in ("env", "cache", "system") else folder
        *_, s = make_mnist(sub, n=10 + i, seed=i)
        sums.update({f"{name}:{k}": v for k, v in s.items()})
    monkeypatch.setenv("DIFFLAB_DATA", str(places["env"]))
    monkeypatch.setenv("DIFFLAB_CACHE", str(places["cache"]))
    monkeypatch.setattr(locate_module, "SYSTEM_DIRS", (places["system"],))
    expected = [("root", 10), ("env", 11), ("cache", 12), ("system", 13)]
    for name, n in expected:
        given = {k.split(":")[1]: v for k, v in sums.items() if k.startswith(name + ":")}
        root = places["root"] if name == "root" else None
        ds = load_images("mnist", root=root, checksums=given, download=False)
        assert len(ds) == n, name
        if name != "root":
            remove = places[name] / "mnist"
            for p in remove.iterdir():
                p.unlink()


# --- folders of images ---


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_image_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        f"{c}/{i}.png": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        for c in ("cats", "dogs")
        for i in range(3)
    }
    for name, a in arrays.items():
        save_png(tmp_path / "pets" / name, a)
    ds = load_images(tmp_path / "pets")
    assert ds.images.shape == (6, 3, 6, 5) and ds.classes == ["cats", "dogs"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1] and ds.checks == ()
    with pytest.raises(DatasetError, match="has no test/ sub-folder"):
        load_images(tmp_path / "pets", "test")
    np.testing.assert_array_equal(ds.images[4], arrays["dogs/1.png"].transpose(2, 0, 1))


def test_flat_image_folder_and_test_split(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            save_png(tmp_path / "faces" / split / f"{i}.png", np.full((4, 4), i * 10, np.uint8))
    test = load_images(str(tmp_path / "faces"), "test")
    assert test.images.shape == (2, 1, 4, 4) and test.classes == ["test"]
    assert test.images[:, 0, 0, 0].tolist() == [0, 10]


def test_image_folder_odd_file_is_named(tmp_path):
    for i in range(3):
        save_png(tmp_path / "imgs" / f"{i}.png", np.zeros((8, 8), np.uint8))
    save_png(tmp_path / "imgs" / "3.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(DatasetError, match=r"3.png: is 9x8 with 1 channel but 0.png is 8x8"):
        load_images(tmp_path / "imgs")
    save_png(tmp_path / "imgs" / "3.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="3.png: is 8x8 with 3 channels"):
        load_images(tmp_path / "imgs")
    (tmp_path / "imgs" / "3.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="3.png: not a readable image"):
        load_images(tmp_path / "imgs")
