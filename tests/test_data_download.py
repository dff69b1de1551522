"""Downloads end to end against a local HTTP server: md5 checks, atomic cache, bad files."""

from __future__ import annotations

import functools
import gzip
import http.server
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from data_places import isolated_places, md5  # noqa: F401 (autouse fixture)

from difflab.data import DatasetError, fetch, load_images


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; under /lying/ it promises more bytes than it sends, then hangs up."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if not self.path.startswith("/lying/"):
            return super().do_GET()
        body = (Path(self.directory) / self.path.rsplit("/", 1)[-1]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder) of an HTTP server on 127.0.0.1, stopped after the test."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()
    httpd.server_close()


def make_mnist(folder: Path, n: int = 20) -> dict[str, str]:
    """train and t10k MNIST-format .gz files; returns their md5s."""
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        for kind, shape in (("images-idx3", (n, 28, 28)), ("labels-idx1", (n,))):
            array = rng.integers(0, 256 if len(shape) > 1 else 10, shape, dtype=np.uint8)
            header = struct.pack(">HBB", 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
            path = folder / f"{prefix}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))
    return {p.name: md5(p) for p in folder.glob("*.gz")}


def cache_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_caches_and_then_works_offline(server, tmp_path):
    url, served = server
    sums = make_mnist(served)
    ds = load_images("mnist", url=url, checksums=sums)
    assert len(ds) == 20 and ds.source == str(tmp_path / "cache" / "mnist")
    assert cache_files(tmp_path) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    for name in cache_files(tmp_path):  # byte-identical, no temp files left
        assert md5(tmp_path / "cache" / "mnist" / name) == sums[name]
    for p in served.iterdir():
        p.unlink()  # the server has nothing any more: the cache must serve the next load
    again = load_images("mnist", checksums=sums, download=False)
    np.testing.assert_array_equal(again.images, ds.images)


def test_download_url_from_environment(server, monkeypatch):
    url, served = server
    sums = make_mnist(served)
    monkeypatch.setenv("DIFFLAB_DOWNLOAD_URL", url.rstrip("/"))
    assert len(load_images("mnist", "test", checksums=sums)) == 20


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_bad_download_is_refused_and_not_kept(server, tmp_path, damage):
    url, served = server
    sums = make_mnist(served)
    path = served / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz: downloaded file has md5"):
        load_images("mnist", url=url, checksums=sums)
    assert cache_files(tmp_path) == []


def test_connection_cut_short_is_refused(server, tmp_path):
    url, served = server
    sums = make_mnist(served)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz: download (failed|ended)"):
        load_images("mnist", url=url + "lying/", checksums=sums)
    assert cache_files(tmp_path) == []


def test_published_md5_refuses_other_files(server, tmp_path):
    url, served = server
    make_mnist(served)
    with pytest.raises(DatasetError, match="expected f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load_images("mnist", url=url)
    assert cache_files(tmp_path) == []


def test_cli_fetch_reports_a_bad_download(server, tmp_path, capsys):
    from difflab.cli.main import main

    url, served = server
    make_mnist(served)
    assert main(["data", "fetch", "mnist", "--url", url]) == 2
    assert "downloaded file has md5" in capsys.readouterr().err
    assert cache_files(tmp_path) == []


def test_bad_file_in_cache_is_never_used(server, tmp_path):
    url, served = server
    sums = make_mnist(served)
    fetch("mnist", "test", url=url, checksums=sums)
    cached = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    cached.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 20) + bytes(20)))
    with pytest.raises(DatasetError, match=f"{cached}: md5 is"):
        load_images("mnist", "test", checksums=sums, download=False)
    ds = load_images("mnist", "test", url=url, checksums=sums)  # deleted and fetched again
    assert md5(cached) == sums[cached.name] and ds.labels.any()


def test_unreachable_server_and_no_download(tmp_path):
    with pytest.raises(DatasetError, match="download failed.*DIFFLAB_DOWNLOAD_URL"):
        load_images("mnist", url="http://127.0.0.1:9/")
    with pytest.raises(DatasetError, match="download=False"):
        load_images("mnist", download=False)


def test_cifar_archive_download(server, tmp_path):
    url, served = server
    folder = tmp_path / "src" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}, 3))
    for i, name in enumerate(names):
        batch = {"data": np.full((2, 3072), i, np.uint8), "labels": [i, 9 - i]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=3))
    with tarfile.open(served / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    sums = {p.name: md5(p) for p in [*folder.iterdir(), served / "cifar-10-python.tar.gz"]}
    test = load_images("cifar10", "test", url=url, checksums=sums)
    assert test.images.shape == (2, 3, 32, 32) and test.labels.tolist() == [5, 4]
    assert test.source == str(tmp_path / "cache" / "cifar10" / "cifar-10-python.tar.gz")
    train = load_images("cifar10", checksums=sums, download=False)
    assert train.images[:, 0, 0, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
