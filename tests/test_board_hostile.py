"""A real `difflab board` process against a hostile runs folder (difflab issue 15 items 3-4).

Symlinks that lead out of the runs folder are never followed; malformed URLs and bad query
values get 400, missing things 404; run numbers resolve as in `difflab runs`; a port in use
is a one-line error. No Traceback may reach the server's stderr.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from difflab.config import RunConfig, config_to_dict
from difflab.tracking.demo import write_demo_run
from difflab.tracking.run_folder import CODE_DIFF_FILE, CONFIG_FILE, METRICS_FILE

SECRET = "root:x:0:0:secret-outside-the-runs-folder"
STARTUP_S = 60


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _difflab(*argv: str) -> list[str]:
    return [sys.executable, "-m", "difflab", *argv]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(runs_dir, outside_dir): run folders whose files point out through symlinks."""
    root = tmp_path_factory.mktemp("hostile")
    outside, runs_dir = root / "outside", root / "runs"
    outside.mkdir()
    (outside / "passwd").write_text(SECRET + "\n")
    config = config_to_dict(RunConfig())
    alpha = write_demo_run(runs_dir, config, name="alpha", epochs=2, steps_per_epoch=3)
    (alpha / CODE_DIFF_FILE).unlink()
    (alpha / CODE_DIFF_FILE).symlink_to(outside / "passwd")  # ln -s /etc/passwd RUN/code.diff
    grid = alpha / "samples" / "epoch_002.png"
    (outside / "grid.png").write_bytes(grid.read_bytes() + SECRET.encode())
    grid.unlink()
    grid.symlink_to(outside / "grid.png")  # a registered image that now leads out
    # Config and metrics that lead out (the secret is JSON, so it would be shown if read).
    (outside / "config.json").write_text(json.dumps({"train": {"lr": SECRET}}))
    (outside / "metrics.jsonl").write_text(json.dumps({"step": 1, "name": SECRET, "value": 1}))
    config["train"]["lr"] = 0.01
    beta = write_demo_run(runs_dir, config, name="beta", epochs=1, steps_per_epoch=2, seed=3)
    (beta / METRICS_FILE).unlink()
    (beta / METRICS_FILE).symlink_to(outside / "metrics.jsonl")
    gamma = write_demo_run(runs_dir, config, name="gamma", epochs=1, steps_per_epoch=2, seed=4)
    (gamma / CONFIG_FILE).unlink()
    (gamma / CONFIG_FILE).symlink_to(outside / "config.json")
    # A run folder kept outside, linked in: neither indexed nor shown.
    elsewhere = write_demo_run(outside, config, name="elsewhere", epochs=1, steps_per_epoch=2)
    (runs_dir / "00007-linked").symlink_to(elsewhere)
    (runs_dir / "runs.sqlite").unlink()  # the board builds the index from the folders
    for suffix in ("-wal", "-shm"):
        (runs_dir / f"runs.sqlite{suffix}").unlink(missing_ok=True)
    return runs_dir, outside


def _start_board(runs_dir: Path) -> tuple[subprocess.Popen, int, str]:
    proc = subprocess.Popen(
        _difflab("board", "--runs-dir", str(runs_dir), "--port", "0"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    deadline = time.monotonic() + STARTUP_S
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "difflab board on http://127.0.0.1:" in line:
            port = int(line.split("127.0.0.1:")[1].split("/")[0])
            return proc, port, "".join(lines)
    proc.kill()
    raise AssertionError("the board did not start:\n" + "".join(lines))


@pytest.fixture(scope="module")
def board(hostile):
    """A running board; `stop_board` (the last test of this module) reads its stderr."""
    runs_dir, _ = hostile
    proc, port, startup_log = _start_board(runs_dir)
    yield {"port": port, "proc": proc, "startup_log": startup_log}
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def stop_board(board) -> str:
    proc = board["proc"]
    proc.terminate()
    try:
        err = proc.communicate(timeout=20)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        err = proc.communicate()[1]
    return board["startup_log"] + err


def get(board, path: str) -> tuple[int, str]:
    """(status, body) of one GET with a raw, already-encoded path."""
    url = f"http://127.0.0.1:{board['port']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def test_symlinks_out_of_the_runs_folder_are_never_followed(board, hostile):
    runs_dir, outside = hostile
    status, runs_table = get(board, "/")
    assert status == 200 and "00001-alpha" in runs_table
    assert "00007-linked" not in runs_table and str(outside) not in runs_table
    assert "00003-gamma" not in runs_table  # its config leads out: skipped
    assert SECRET not in runs_table
    status, alpha = get(board, "/run/00001-alpha")
    assert status == 200 and SECRET not in alpha and "code.diff" in alpha
    assert "/file/00001-alpha/samples/epoch_002.png" not in alpha  # its image leads out
    assert get(board, "/file/00001-alpha/samples/epoch_001.png")[0] == 200
    status, body = get(board, "/file/00001-alpha/samples/epoch_002.png")
    assert status in (403, 404) and SECRET not in body
    status, beta = get(board, "/run/00002-beta")
    assert status == 200 and SECRET not in beta
    for path in ("/run/00007-linked", "/run/7", "/run/00003-gamma"):
        status, body = get(board, path)
        assert status == 404 and str(outside) not in body and SECRET not in body, path


def test_run_references_resolve_as_in_the_cli(board):
    by_name = get(board, "/run/00002-beta")
    assert by_name[0] == 200
    for ref in ("2", "00002"):
        status, body = get(board, f"/run/{ref}")
        assert status == 200 and "<h1>00002-beta</h1>" in body, ref
    status, body = get(board, "/compare?run=1&run=00002")
    assert status == 200 and "train.lr" in body


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/run/%00", 400),
        ("/run/00001-alpha%00", 400),
        ("/run/%ff%fe", 400),
        ("/run/%zz", 400),
        ("/file/00001-alpha/samples/epoch_001.png%00", 400),
        ("/file/00001-alpha/%c3%28", 400),
        ("/file/%00/x.png", 400),
        ("/compare?run=%00&run=1", 400),
        ("/?filter=%ff", 400),
        ("/?sort=nope", 400),
        ("/?order=sideways", 400),
        ("/?filter=no-equals-sign", 400),
        ("/compare?run=1", 400),
        ("/compare?run=1&run=2&run=3&run=4&run=5", 400),
        ("/compare?run=1&run=nope", 404),
        ("/run/nope", 404),
        ("/run/" + "9" * 5000, 404),
        ("/nope", 404),
    ],
)
def test_bad_requests_are_400_and_missing_things_404(board, path, want):
    status, body = get(board, path)
    assert status == want, (path, body)
    assert body.strip(), path  # a reason, not an empty reply


def test_zz_no_traceback_reached_the_board_stderr(board):
    # Named to run last in this module: it stops the board and reads all it wrote.
    assert get(board, "/")[0] == 200
    err = stop_board(board)
    assert "Traceback" not in err and "Error" not in err, err
    assert "00007-linked" in err and "config.json" in err  # reindex warned about both
    assert "code.diff leads outside" in err  # the run page said so too


def test_port_in_use_is_one_line(tmp_path):
    config = config_to_dict(RunConfig())
    write_demo_run(tmp_path, config, name="alpha", epochs=1, steps_per_epoch=2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        out = subprocess.run(
            _difflab("board", "--runs-dir", str(tmp_path), "--port", str(port)),
            capture_output=True,
            text=True,
            timeout=STARTUP_S,
            env=_env(),
        )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and "--port" in lines[0], out.stderr
