"""The `Tracker` protocol and the name -> tracker factory used by `difflab train`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

TrackerName = Literal["local", "wandb", "tensorboard"]
TRACKER_NAMES: tuple[str, ...] = ("local", "wandb", "tensorboard")


@runtime_checkable
class Tracker(Protocol):
    """Somewhere a run's config, scalars, images and files go. Built knowing its run folder."""

    name: str

    def start(self) -> None:
        """Open the run (config and code recorded here)."""

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        """Scalars at a global step (per-batch loss, per-epoch metrics)."""

    def log_images(self, name: str, path: Path, *, step: int) -> None:
        """An image file (a sample grid PNG) at a global step."""

    def log_artifact(self, name: str, path: Path, *, kind: str, step: int) -> None:
        """A file worth keeping (a checkpoint, the final weights)."""

    def finish(self, status: Literal["finished", "failed"] = "finished") -> None:
        """Close the run; `status` says whether training ended well."""


def parse_tracker_names(names: str | Iterable[str]) -> list[str]:
    """ "local,wandb" or ["local", "wandb"] -> validated, de-duplicated names."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item not in TRACKER_NAMES:
            raise ValueError(f"--trackers: {item!r} is not one of {', '.join(TRACKER_NAMES)}")
        if item not in out:
            out.append(item)
    return out


def make_trackers(
    names: str | Iterable[str],
    run_dir: str | Path,
    config: dict[str, Any],
    *,
    runs_dir: str | Path | None = None,
    wandb_project: str = "difflab",
) -> list[Tracker]:
    """Trackers for `run_dir` by name. Optional packages are imported only when named here."""
    run_dir = Path(run_dir)
    trackers: list[Tracker] = []
    for name in parse_tracker_names(names):
        if name == "local":
            from difflab.tracking.local import LocalTracker

            trackers.append(LocalTracker(run_dir, config, runs_dir=runs_dir))
        elif name == "wandb":
            from difflab.tracking.wandb_tracker import WandbTracker

            trackers.append(WandbTracker(run_dir, config, project=wandb_project))
        else:
            from difflab.tracking.tensorboard_tracker import TensorBoardTracker

            trackers.append(TensorBoardTracker(run_dir, config))
    return trackers
