"""Progress: tqdm bars (epochs, batches with live loss, images/s and ETA) on a terminal;
plain log lines with an ETA every `log_every` seconds when stderr is not a terminal (CI, logs).

The ETA is the fit's own pace (steps per second since it began, validation and sample grids
included) times the steps left, on the same clock as the LR schedule: `learn.step` out of
`learn.total_steps`. A wall-clock budget (--train.minutes) may end the run sooner.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from difflab.training.callback import Callback
from difflab.training.callbacks.budget import WallClockBudget
from difflab.training.callbacks.metrics import batch_size_of

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

log = logging.getLogger("difflab.training")


class ProgressCB(Callback):
    """Shows training progress on the main process; shows the last reported `train/loss`."""

    order = 40

    def __init__(self, *, log_every: float = 30.0, tty: bool | None = None):
        self.log_every = log_every
        self.tty = tty
        self._bar: Any = None
        self._epoch_bar: Any = None
        self._fit_start, self._fit_step = 0.0, None
        self._loss: float | None = None
        self._images = 0
        self._start = self._last_log = 0.0
        self._epoch_losses: dict[str, float] = {}

    def before_fit(self, learn: Learner) -> None:
        if self.tty is None:
            self.tty = sys.stderr.isatty()
        self._fit_step = None  # set at the first epoch, after a resume has restored the step
        if self.tty and learn.is_main_process:
            from tqdm.auto import tqdm

            self._epoch_bar = tqdm(
                total=learn.n_epochs, unit="epoch", desc="fit", dynamic_ncols=True, position=0
            )

    def before_epoch(self, learn: Learner) -> None:
        self._images, self._start = 0, time.perf_counter()
        self._last_log = self._start
        if self._fit_step is None:
            self._fit_start, self._fit_step = self._start, learn.step
        if learn.training and self.tty and learn.is_main_process:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=_length(learn.train_data),
                unit="batch",
                dynamic_ncols=True,
                desc=f"epoch {learn.epoch + 1}/{learn.n_epochs}",
                leave=False,
                position=1,  # under the epoch bar
            )

    def after_batch(self, learn: Learner) -> None:
        if not learn.training or not learn.is_main_process:
            return
        self._images += batch_size_of(learn.batch)
        now = time.perf_counter()
        speed = self._images / max(now - self._start, 1e-9)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=_fmt(self._loss), img_s=f"{speed:.0f}", refresh=False)
        elif now - self._last_log >= self.log_every:
            self._last_log = now
            log.info(
                "epoch %d/%d step %d loss %s %.0f img/s ETA %s",
                learn.epoch + 1,
                learn.n_epochs,
                learn.step,
                _fmt(self._loss),
                speed,
                _fmt_duration(self.eta(learn, now)),
            )

    def eta(self, learn: Learner, now: float) -> float | None:
        """Seconds until the fit's last step at this fit's pace so far (None: no step yet),
        or until a wall-clock budget runs out, whichever comes first."""
        done = learn.step - (self._fit_step or 0)
        if done <= 0:
            return None
        by_steps = max(learn.total_steps - learn.step, 0) * (now - self._fit_start) / done
        budgets = [cb.seconds_left() for cb in learn.callbacks if isinstance(cb, WallClockBudget)]
        return min([by_steps, *budgets])

    def after_epoch(self, learn: Learner) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if learn.is_last_phase and self._epoch_bar is not None:
            self._epoch_bar.n = learn.epoch + 1  # absolute: a resumed fit starts mid-way
            self._epoch_bar.refresh()
        if learn.is_last_phase and learn.is_main_process:
            losses = " ".join(f"{k} {v:.5g}" for k, v in self._epoch_losses.items())
            message = f"epoch {learn.epoch + 1}/{learn.n_epochs} step {learn.step}: {losses}"
            if self.tty:
                from tqdm.auto import tqdm

                tqdm.write(message, file=sys.stderr)
            else:
                log.info(message)
            self._epoch_losses.clear()

    def cleanup_fit(self, learn: Learner) -> None:
        for bar in (self._bar, self._epoch_bar):
            if bar is not None:
                bar.close()
        self._bar = self._epoch_bar = None

    def on_report(self, learn: Learner, name: str, value: float, step: int) -> None:
        if name == "train/loss":
            self._loss = value
        elif name.startswith("epoch/"):
            self._epoch_losses[name.removeprefix("epoch/")] = value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None
