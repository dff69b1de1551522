"""TensorBoard tracker (optional: `pip install difflab[tensorboard]`).

Written with tensorboard's own event writer and protos, so neither TensorFlow nor
torch.utils.tensorboard is needed (tracking imports no torch).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Literal

from difflab.files import atomic_write_json

TENSORBOARD_DIR = "tensorboard"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk (PNG spec, section 11.2.2)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file (TensorBoard images must be PNG sample grids)")
    return struct.unpack(">II", data[16:24])


class TensorBoardTracker:
    """Scalars and sample-grid images as event files in `<run_dir>/tensorboard/`."""

    name = "tensorboard"

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any] | None = None,
        *,
        log_dir: str | Path | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.run_dir / TENSORBOARD_DIR
        self.config = config
        self._writer: Any = None

    def start(self) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(self.log_dir))
        if self.config is not None:  # TensorBoard has no config panel: keep it beside the events
            atomic_write_json(self.log_dir / "config.json", self.config)

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()]
        self._add(Summary(value=values), step)

    def log_images(self, name: str, path: Path, *, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        data = Path(path).read_bytes()
        width, height = png_size(data)
        image = Summary.Image(
            height=height, width=width, colorspace=_colorspace(data), encoded_image_string=data
        )
        self._add(Summary(value=[Summary.Value(tag=name, image=image)]), step)

    def log_artifact(self, name: str, path: Path, *, kind: str = "artifact", step: int) -> None:
        """TensorBoard has no place for files; checkpoints stay in the run folder."""

    def finish(self, status: Literal["finished", "failed"] = "finished") -> None:
        self._writer.close()
        self._writer = None

    def _add(self, summary: Any, step: int) -> None:
        import time

        from tensorboard.compat.proto.event_pb2 import Event

        # The writer flushes from its own thread every few seconds, and on close.
        self._writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))


def _colorspace(png: bytes) -> int:
    """TensorBoard colorspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) from the PNG colour type."""
    return {0: 1, 4: 2, 2: 3, 3: 3, 6: 4}.get(png[25], 3)
