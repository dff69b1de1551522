"""One callback per job. Generic ones are here; diffusion-specific ones (samples, evaluation)
and tracking live in their own modules of this package."""

from difflab.training.callbacks.checkpoint import CheckpointCB
from difflab.training.callbacks.clip import GradClipCB
from difflab.training.callbacks.device import AccelerateCB, process_rank
from difflab.training.callbacks.ema import EMACB
from difflab.training.callbacks.hooks import ActivationHooksCB
from difflab.training.callbacks.live import LivePlotCB, NotebookProgressCB, in_notebook
from difflab.training.callbacks.lr_finder import LRFinderCB, LRFindResult, lr_find, suggest_lr
from difflab.training.callbacks.metrics import MetricsCB
from difflab.training.callbacks.nonfinite import NonFiniteGuardCB
from difflab.training.callbacks.progress import ProgressCB
from difflab.training.callbacks.schedule import LRScheduleCB
from difflab.training.callbacks.smoke import SingleBatchCB

__all__ = [
    "AccelerateCB",
    "ActivationHooksCB",
    "CheckpointCB",
    "EMACB",
    "GradClipCB",
    "LivePlotCB",
    "LRFindResult",
    "LRFinderCB",
    "LRScheduleCB",
    "MetricsCB",
    "NotebookProgressCB",
    "NonFiniteGuardCB",
    "ProgressCB",
    "SingleBatchCB",
    "in_notebook",
    "lr_find",
    "process_rank",
    "suggest_lr",
]
