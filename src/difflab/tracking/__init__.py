"""Experiment tracking: run folders, a local SQLite run store, W&B and TensorBoard.

    trackers = make_trackers("local,wandb", run_dir, config_dict)   # one per name
    callbacks.append(TrackingCallback(trackers))   # difflab.training.callbacks.tracking

Imports the standard library only; never training or metrics (wandb and tensorboard are
imported by their trackers, when asked for).
"""

from difflab.tracking.base import TRACKER_NAMES, Tracker, make_trackers, parse_tracker_names
from difflab.tracking.local import LocalTracker
from difflab.tracking.store import RunRecord, RunStore, flatten_config

__all__ = [
    "TRACKER_NAMES",
    "LocalTracker",
    "RunRecord",
    "RunStore",
    "Tracker",
    "flatten_config",
    "make_trackers",
    "parse_tracker_names",
]
