"""PNG grids, npz sample files and process pictures, checked by reading the files back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.io.images import (
    forward_process_images,
    load_samples_npz,
    make_grid,
    save_forward_process,
    save_grid,
    save_samples_npz,
    save_trajectory,
    show_images,
    to_uint8_array,
)


def random_uint8(n, c, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_grid_round_trip_places_every_image(tmp_path, channels):
    images = random_uint8(5, channels, 6, 4)
    path = save_grid(images, tmp_path / "grid.png", ncols=3, padding=1)
    grid = np.asarray(Image.open(path))
    if channels == 1:
        grid = grid[:, :, None]
    assert grid.shape == (1 + 2 * 7, 1 + 3 * 5, channels)
    for k in range(5):
        top, left = 1 + (k // 3) * 7, 1 + (k % 3) * 5
        np.testing.assert_array_equal(
            grid[top : top + 6, left : left + 4], images[k].transpose(1, 2, 0)
        )
    assert (grid[:, 0] == 0).all()  # padding column
    assert (grid[8:, 11:] == 0).all()  # empty sixth cell


def test_float_images_map_value_range_to_0_255():
    x = torch.tensor([-0.5, 0.0, 0.5, 2.0, -3.0]).reshape(1, 1, 1, 5)
    np.testing.assert_array_equal(
        to_uint8_array(x, value_range=(-0.5, 0.5))[0, 0, 0], [0, 128, 255, 255, 0]
    )
    assert to_uint8_array(x.bfloat16(), value_range=(-0.5, 0.5)).dtype == np.uint8
    with pytest.raises(ValueError, match="value_range"):
        to_uint8_array(x)


def test_scaled_grid_repeats_pixels(tmp_path):
    images = random_uint8(1, 1, 3, 3)
    grid = np.asarray(Image.open(save_grid(images, tmp_path / "g.png", padding=0, scale=2)))
    np.testing.assert_array_equal(grid[::2, ::2], images[0, 0])
    np.testing.assert_array_equal(grid[1::2, 1::2], images[0, 0])


def test_npz_round_trip_with_and_without_labels(tmp_path):
    images = random_uint8(7, 1, 28, 28)
    labels = np.arange(7)
    np.testing.assert_array_equal(
        load_samples_npz(save_samples_npz(tmp_path / "a.npz", images)), images
    )
    got, got_labels = load_samples_npz(
        save_samples_npz(tmp_path / "b.npz", torch.from_numpy(images), labels=labels),
        with_labels=True,
    )
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_npz_refuses_floats_pickles_and_wrong_contents(tmp_path):
    with pytest.raises(ValueError, match="value_range"):
        save_samples_npz(tmp_path / "f.npz", np.zeros((2, 1, 4, 4), dtype=np.float32))
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        load_samples_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="no 'images' array"):
        load_samples_npz(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        load_samples_npz(tmp_path / "missing.npz")


@pytest.mark.parametrize("content", [b"not a zip at all", b"\x93NUMPY" + bytes(100), b""])
def test_a_file_that_is_no_npz_gets_one_line_naming_it(tmp_path, content, capsys):
    from difflab.cli.main import main

    bad = tmp_path / "x.npz"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="not a .npz file") as info:
        load_samples_npz(bad)
    assert str(bad) in str(info.value) and "allow_pickle" not in str(info.value)
    assert main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "allow_pickle" not in err


def test_forward_process_follows_closed_form_and_is_saved(tmp_path):
    x0 = torch.rand(3, 1, 8, 8) - 0.5
    alpha_bar = torch.tensor([1.0, 0.5, 0.0])
    x_t = forward_process_images(x0, alpha_bar, generator=torch.Generator().manual_seed(0))
    assert x_t.shape == (3, 3, 1, 8, 8)
    torch.testing.assert_close(x_t[:, 0], x0)  # alpha_bar = 1: the data itself
    eps = x_t[:, 2]  # alpha_bar = 0: pure noise, the same eps in every column
    torch.testing.assert_close(x_t[:, 1], 0.5**0.5 * x0 + 0.5**0.5 * eps)
    path = save_forward_process(tmp_path / "fwd.png", x0, alpha_bar, value_range=(-0.5, 0.5))
    assert Image.open(path).size == (2 * (2 + 3 * 10), 2 * (2 + 3 * 10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        forward_process_images(x0, torch.tensor([1.5]))


def test_trajectory_grid_has_one_column_per_step(tmp_path):
    steps = [torch.full((2, 1, 4, 4), v) for v in (-0.5, 0.0, 0.5)]
    grid = np.asarray(
        Image.open(save_trajectory(tmp_path / "traj.png", steps, value_range=(-0.5, 0.5), scale=1))
    )
    assert grid.shape == (2 + 2 * 6, 2 + 3 * 6)
    assert grid[2, 2] == 0 and grid[2, 8] == 128 and grid[2, 14] == 255
    assert make_grid(steps[0], value_range=(-0.5, 0.5)).shape == (2 + 6, 2 + 2 * 6, 1)


def test_show_images_returns_a_figure_with_titles():
    pytest.importorskip("matplotlib", reason="show_images needs matplotlib (dev extra)")
    import matplotlib

    matplotlib.use("Agg")
    fig = show_images(random_uint8(3, 1, 5, 5), ncols=2, titles=["a", "b", "c"], return_fig=True)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["a", "b", "c"] and len(fig.axes) == 4
    with pytest.raises(ValueError, match="titles"):
        show_images(random_uint8(3, 1, 5, 5), titles=["a"], return_fig=True)


def test_every_damaged_spot_of_an_npz_is_refused_in_one_line_or_harmless(tmp_path):
    """8 bytes inverted at every offset of a samples file: numpy, zipfile and zlib raise a
    dozen exception types between them; each one is a ValueError naming the file, or the
    flip hit bytes that do not matter (a timestamp) and the pixels are the very same."""
    images = np.zeros((64, 1, 28, 28), dtype=np.uint8)
    images[:, :, 10:18, 10:18] = 200  # compressible: the flips land in deflate codes
    data = save_samples_npz(tmp_path / "good.npz", images).read_bytes()
    refused = 0
    for offset in range(len(data) - 8):
        damaged = bytearray(data)
        damaged[offset : offset + 8] = bytes(b ^ 0xFF for b in damaged[offset : offset + 8])
        path = tmp_path / "damaged.npz"
        path.write_bytes(bytes(damaged))
        try:
            np.testing.assert_array_equal(load_samples_npz(path), images)
        except ValueError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err), err
            refused += 1
    assert refused > len(data) // 2
