"""Files given on the command line: a samples .npz to `difflab eval`, a TOML config to
`difflab train --config X.toml --dry-run`, and a port that is taken for `difflab board`.
Each is refused in one line (exit 2) that names it and says what to do."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from difflab.io.images import save_samples_npz

from . import damage
from .harness import Expect, difflab, judge, snapshot

GOOD_TOML = """\
# a run config as people write them
[model]
preset = "tiny"

[data]
limit = 256

[train]
epochs = 2
lr = 0.0003
batch_size = 64
checkpoint_every = 4
"""


def write_samples(path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 1, 28, 28), dtype=np.uint8)
    save_samples_npz(path, pixels)


def float_pixels(path: Path) -> None:
    """Images as float32 in [0, 1] (another tool's convention), under the right key."""
    np.savez_compressed(path, images=np.random.default_rng(0).random((8, 1, 28, 28), np.float32))


def renamed_key(path: Path) -> None:
    """The pixels under another key than `images` (the key deleted)."""
    with np.load(path) as data:
        pixels = data["images"]
    np.savez_compressed(path, pixels=pixels)


def not_a_zip(path: Path) -> None:
    path.write_bytes(b"\x00" * 64 + b"these are not samples")


def cut_mid_value(path: Path) -> None:
    """A TOML file cut inside a value (`lr = 0.00` would still parse: cut in a string)."""
    text = path.read_text()
    path.write_text(text[: text.index('"tiny"') + 3])


def wrong_type(path: Path) -> None:
    path.write_text(path.read_text().replace("epochs = 2", 'epochs = "two"'))


def unknown_key(path: Path) -> None:
    path.write_text(path.read_text().replace("epochs = 2", "epochz = 2"))


UNREADABLE = r"difflab sample"
NPZ_CASES = [damage.truncate, damage.bit_flip, renamed_key, float_pixels, not_a_zip]
TOML_CASES = [
    (cut_mid_value, r"not valid TOML"),
    (damage.bit_flip, r"not UTF-8 text"),
    (wrong_type, r"--train\.epochs"),
    (unknown_key, r"known: .*epochs"),
]


@pytest.mark.parametrize("do_damage", NPZ_CASES, ids=lambda f: f.__name__)
def test_eval_of_a_damaged_samples_file(do_damage, tmp_path):
    samples = tmp_path / "samples.npz"
    write_samples(samples)
    do_damage(samples)
    before = snapshot(tmp_path)
    out = difflab("eval", samples, "--no-kid")
    problems = judge(out, Expect(2, "samples.npz", UNREADABLE), before, tmp_path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("do_damage", "advice"), TOML_CASES, ids=[f.__name__ for f, _ in TOML_CASES]
)
def test_dry_run_of_a_damaged_toml_config(do_damage, advice, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(GOOD_TOML)
    do_damage(config)
    before = snapshot(tmp_path)
    out = difflab("train", "--config", config, "--dry-run")
    problems = judge(out, Expect(2, "run.toml", advice), before, tmp_path)
    assert not problems, "\n".join(problems)


def test_board_on_a_port_in_use(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    before = snapshot(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        out = difflab("board", "--runs-dir", runs, "--port", port, timeout=60)
    # the index of the (empty) runs folder is built before the port is taken
    expect = Expect(2, f"--port {port}", r"pick another with --port", ("runs/runs.sqlite*",))
    problems = judge(out, expect, before, tmp_path)
    assert not problems, "\n".join(problems)
