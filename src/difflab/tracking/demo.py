"""Realistic-looking run folders written through the tracking API (tests, screenshots, docs).

Nothing here trains: the curves are made-up but shaped like real ones (a decaying noisy loss,
FID falling per epoch) and each epoch's sample grid is drawn with Pillow, so the run store,
`difflab runs` and the board can be exercised without a training run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from difflab.tracking.local import LocalTracker
from difflab.tracking.run_folder import CHECKPOINTS_DIR, SAMPLES_DIR, create_run_folder
from difflab.tracking.store import config_facts

GridMaker = Callable[[int, int], Any]  # (epoch, seed) -> PIL.Image


def draw_grid(epoch: int, seed: int, *, n: int = 4, size: int = 28) -> Any:
    """An n x n grid of blobs that get sharper with the epoch (a stand-in for samples)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed * 1000 + epoch)
    grid = Image.new("L", (n * size, n * size), 0)
    for k in range(n * n):
        tile = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(tile)
        w, h = rng.randint(8, 20), rng.randint(10, 24)
        x0, y0 = (size - w) // 2, (size - h) // 2
        draw.rounded_rectangle((x0, y0, x0 + w, y0 + h), radius=3, fill=rng.randint(120, 255))
        tile = tile.filter(ImageFilter.GaussianBlur(max(0.2, 3.0 / (epoch + 1))))
        grid.paste(tile, ((k % n) * size, (k // n) * size))
    return grid


def write_demo_run(
    runs_dir: str | Path,
    config: dict[str, Any],
    *,
    name: str | None = None,
    epochs: int = 4,
    steps_per_epoch: int = 20,
    seed: int = 0,
    status: Literal["finished", "failed"] = "finished",
    make_grid: GridMaker = draw_grid,
) -> Path:
    """A finished (or failed) run folder with loss, valid loss, FID, grids and a checkpoint."""
    dataset, preset = config_facts(config)
    run_dir = create_run_folder(
        runs_dir, config, dataset=dataset or "demo", preset=preset or "demo", name=name
    )
    rng = random.Random(seed)
    tracker = LocalTracker(run_dir, config, flush_every=500)
    tracker.start()
    floor = 0.03 + 0.01 * rng.random()
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i + 1
            loss = floor + 0.9 * math.exp(-step / (0.7 * steps_per_epoch))
            tracker.log_metrics({"train/loss": loss * (1 + 0.08 * rng.gauss(0, 1))}, step=step)
        fid = 4.0 + 60.0 * math.exp(-0.8 * epoch) * (0.8 + 0.4 * rng.random())
        tracker.log_metrics(
            {"epoch/valid_loss": floor * 1.05 + 0.3 * math.exp(-epoch), "fid": fid}, step=step
        )
        grid = run_dir / SAMPLES_DIR / f"epoch_{epoch + 1:03d}.png"
        make_grid(epoch, seed).save(grid)
        tracker.log_images("samples", grid, step=step)
    checkpoint = run_dir / CHECKPOINTS_DIR / "last.safetensors"
    checkpoint.write_bytes(b"demo run: not real weights\n")
    tracker.log_artifact("checkpoint", checkpoint, kind="artifact", step=step)
    tracker.finish(status)
    return run_dir
