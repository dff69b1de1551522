"""The board over plain HTTP: pages, escaping, read-only, path traversal, host check."""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request

import pytest

from difflab.config import RunConfig, config_to_dict
from difflab.tracking.board.server import make_server
from difflab.tracking.board.svg import line_chart, nice_ticks
from difflab.tracking.demo import write_demo_run
from difflab.tracking.reindex import rebuild

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    config = config_to_dict(RunConfig())
    write_demo_run(runs_dir, config, name="alpha", epochs=3, steps_per_epoch=5)
    config["train"]["lr"] = 0.01
    config["name"] = EVIL  # a config value is user input too
    write_demo_run(runs_dir, config, name=EVIL, epochs=2, steps_per_epoch=5, seed=2)
    (runs_dir / "secret.txt").write_text("not for the web")
    server = make_server(runs_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(board, path: str, *, method: str = "GET", host: str | None = None):
    """(status, headers, body) for a raw request path (no client-side normalisation)."""
    conn = http.client.HTTPConnection(*board.server_address[:2], timeout=10)
    conn.putrequest(method, path, skip_host=host is not None)
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.headers, body


def evil_name(board) -> str:
    return next(p.name for p in board.runs_dir.iterdir() if p.name.startswith("00002"))


def test_runs_table_escapes_names_and_config(board):
    status, headers, body = request(board, "/")
    html = body.decode()
    assert status == 200 and "00001-alpha" in html
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # config column
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_run_named_like_a_script_appears_escaped(board):
    # The folder name is slugged by create_run_folder; the config value keeps the raw text.
    name = evil_name(board)
    status, _, body = request(board, "/run/" + urllib.request.quote(name, safe=""))
    html = body.decode()
    assert status == 200
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # only our own /static/board.js


def test_unslugged_script_name_in_index_is_escaped(board, tmp_path):
    # A run folder renamed by hand to a hostile name still shows escaped after reindex.
    import shutil

    from difflab.tracking.store import RunStore

    src = board.runs_dir / evil_name(board)
    hostile = board.runs_dir / "00009-<img src=x onerror=alert(1)>"
    shutil.copytree(src, hostile)
    with RunStore(board.runs_dir) as store:
        rebuild(store)
    try:
        html = request(board, "/")[2].decode()
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        path = "/run/" + urllib.request.quote(hostile.name, safe="")
        status, _, body = request(board, path)
        assert status == 200 and "<img src=x" not in body.decode()
    finally:
        shutil.rmtree(hostile)
        with RunStore(board.runs_dir) as store:
            rebuild(store)


def test_pages_and_images(board):
    status, _, body = request(board, "/run/00001-alpha")
    html = body.decode()
    assert status == 200 and html.count('class="series"') >= 2  # loss and fid curves
    assert "/file/00001-alpha/samples/epoch_003.png" in html
    status, headers, png = request(board, "/file/00001-alpha/samples/epoch_001.png")
    assert status == 200 and headers["Content-Type"] == "image/png" and png[:4] == b"\x89PNG"
    compare = f"/compare?run=00001-alpha&run={urllib.request.quote(evil_name(board), safe='')}"
    status, _, body = request(board, compare)
    assert status == 200 and "train.lr" in body.decode()
    assert request(board, "/compare?run=00001-alpha")[0] == 400  # a bad query, not a missing thing
    assert request(board, "/compare?run=00001-alpha&run=nope")[0] == 404
    assert request(board, "/run/nope")[0] == 404
    assert request(board, "/static/board.js")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/file/../../etc/passwd",
        "/file/00001-alpha/../../../../etc/passwd",
        "/file/00001-alpha/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/file/00001-alpha/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/file/00001-alpha/%252e%252e/secret.txt",
        "/file/00001-alpha/..%2Fsecret.txt",
        "/file/00001-alpha//etc/passwd",
        "/file/00001-alpha/config.json",
        "/file/00001-alpha/checkpoints/last.safetensors",
        "/file/..%2Fsecret.txt/x",
        "/file/",
    ],
)
def test_traversal_and_unregistered_files_are_refused(board, path):
    status, _, body = request(board, path)
    assert status in (403, 404), path
    assert b"root:" not in body and b"not for the web" not in body and b"demo run" not in body


def test_read_only_and_host_check(board):
    for method in ("POST", "PUT", "DELETE"):
        assert request(board, "/", method=method)[0] == 405
    head = request(board, "/", method="HEAD")
    assert head[0] == 200 and head[2] == b""
    assert request(board, "/", host="evil.example:80")[0] == 403  # DNS rebinding
    assert request(board, "/", host="localhost:1234")[0] == 200
    assert board.server_address[0] == "127.0.0.1"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{board.server_address[1]}/nope", timeout=10)
    assert err.value.code == 404


def test_svg_chart_maths():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    svg = line_chart(
        [("a <b>", [(0, 1.0), (10, 0.1), (20, float("nan"))])], title="t&t", log_y=True
    )
    assert "a &lt;b&gt;" in svg and "t&amp;t" in svg and svg.count("<path") == 1
    assert "no finite values" in line_chart([("x", [(0, float("nan"))])], title="x")


def test_board_command_help_and_bad_port(capsys, tmp_path):
    from difflab.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["board", "--help"])
    assert exit_info.value.code == 0 and "127.0.0.1" in capsys.readouterr().out
    assert main(["board", "--port", "70000", "--runs-dir", str(tmp_path)]) == 2
    assert "--port" in capsys.readouterr().err
