"""Training: a generic Learner with ordered callbacks (knows nothing about diffusion).

learn = Learner(model, train_data, objective, lr=3e-3, run_dir=run_dir,
                callbacks=standard_callbacks(mixed_precision="bf16", run_dir=run_dir))
learn.fit(epochs)                    # or learn.fit(epochs, resume=run_dir)
model_for_sampling = eval_model(learn)
"""

from difflab.training.callback import (
    EVENTS,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
)
from difflab.training.callbacks.device import end_process_group, process_rank
from difflab.training.learner import Learner
from difflab.training.standard import (
    eval_model,
    find_callback,
    last_checkpoint,
    standard_callbacks,
    stopped_by_nonfinite,
    stopped_by_signal,
)

__all__ = [
    "EVENTS",
    "Callback",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "Learner",
    "eval_model",
    "find_callback",
    "last_checkpoint",
    "end_process_group",
    "process_rank",
    "standard_callbacks",
    "stopped_by_nonfinite",
    "stopped_by_signal",
]
