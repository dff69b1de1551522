"""TensorBoard tracker: event files read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from PIL import Image

from difflab.tracking.base import make_trackers
from difflab.tracking.tensorboard_tracker import png_size
from difflab.training.callbacks.tracking import TrackingCallback

pytest.importorskip("tensorboard", reason="tensorboard is an optional extra")


def test_scalars_and_images_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    grid = tmp_path / "epoch_001.png"
    Image.new("RGB", (40, 20), (255, 0, 0)).save(grid)
    [tracker] = make_trackers("tensorboard", tmp_path, {"train": {"lr": 0.01}})
    cb, learn = TrackingCallback([tracker]), SimpleNamespace(is_main_process=True)
    cb.before_fit(learn)
    for step in range(1, 6):
        cb.on_report(learn, "train/loss", 1.0 / step, step)
    cb.on_report(learn, "fid", 33.0, 5)
    cb.on_file(learn, "samples", grid, "image", 5)
    cb.on_file(learn, "checkpoint", grid, "artifact", 5)  # accepted, nothing to write
    cb.after_fit(learn)
    cb.cleanup_fit(learn)
    assert cb.active == []

    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    loss = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert loss == [(s, pytest.approx(1.0 / s)) for s in range(1, 6)]
    assert [(e.step, e.value) for e in acc.Scalars("fid")] == [(5, 33.0)]
    [image] = acc.Images("samples")
    assert (image.step, image.width, image.height) == (5, 40, 20)
    with Image.open(io.BytesIO(image.encoded_image_string)) as decoded:
        assert decoded.getpixel((3, 3)) == (255, 0, 0)
    assert (tmp_path / "tensorboard" / "config.json").is_file()


def test_png_size_rejects_other_files():
    buf = io.BytesIO()
    Image.new("L", (7, 3)).save(buf, format="PNG")
    assert png_size(buf.getvalue()) == (7, 3)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + bytes(30))
