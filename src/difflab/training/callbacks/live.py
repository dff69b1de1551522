"""Training in a notebook: a progress bar and a live loss plot, redrawn in place.

    learn, shape = build_learner(config, run_dir, progress=False,
                                 callbacks=[NotebookProgressCB(), LivePlotCB()])
    learn.fit(5)        # the cell shows one bar and one plot, updated as training runs

Inside a Jupyter kernel both draw into the output of the cell that runs `fit`, each through one
IPython display handle (no widgets: the saved notebook keeps the last frame as HTML / PNG).
Anywhere else (a terminal, a script, CI) they do nothing unless given a `display` function.
The plot is a `matplotlib.figure.Figure` rendered to PNG, never pyplot: no backend is switched
and no figure is left open.
"""

from __future__ import annotations

import html
import io
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from difflab.training.callback import Callback
from difflab.training.callbacks.budget import WallClockBudget
from difflab.training.callbacks.metrics import batch_size_of
from difflab.training.callbacks.progress import _fmt_duration

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

# display(obj, display_id=True) -> a handle with .update(obj): IPython.display.display's signature
Display = Callable[..., Any]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel), False in a terminal."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def notebook_display() -> Display | None:
    """IPython's `display` inside a Jupyter kernel, else None (the callbacks stay silent)."""
    if not in_notebook():
        return None
    from IPython.display import display

    return display


class PNG:
    """PNG bytes that IPython shows as an image (and as a short text elsewhere)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _repr_png_(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return f"<PNG, {len(self.data)} bytes>"


class HTMLText:
    """An HTML fragment with a plain-text twin (what a terminal or a text-only viewer shows)."""

    def __init__(self, html_text: str, text: str) -> None:
        self.html_text, self.text = html_text, text

    def _repr_html_(self) -> str:
        return self.html_text

    def __repr__(self) -> str:
        return self.text


class _Output:
    """One output area: shown at the first update, replaced in place afterwards."""

    def __init__(self, display: Display | None) -> None:
        self.display = display
        self.handle: Any = None

    def update(self, obj: Any) -> None:
        if self.handle is None:
            self.handle = self.display(obj, display_id=True)
        else:
            self.handle.update(obj)


class NotebookProgressCB(Callback):
    """An HTML progress bar over the fit (its steps, or its wall-clock budget when that ends
    it sooner) with epoch, step, the last `train/loss`, img/s and the ETA.

    Redrawn every `every` training steps and at each epoch's end. `display` defaults to
    IPython's inside a kernel; outside one (and without `display`) the callback does nothing.
    """

    order = 40  # where ProgressCB sits

    def __init__(self, *, every: int = 10, display: Display | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1 step, got {every}")
        self.every, self._display = every, display
        self._out: _Output | None = None
        self._loss: float | None = None
        self._start, self._first_step, self._images = 0.0, 0, 0

    def before_fit(self, learn: Learner) -> None:
        display = self._display or notebook_display()
        self._out = _Output(display) if display and learn.is_main_process else None
        self._start, self._first_step, self._images = time.perf_counter(), learn.step, 0

    def on_report(self, learn: Learner, name: str, value: float, step: int) -> None:
        if name == "train/loss":
            self._loss = value

    def after_batch(self, learn: Learner) -> None:
        if learn.training and self._out is not None:
            self._images += batch_size_of(learn.batch)
            if learn.step % self.every == 0:
                self._out.update(self.render(learn))

    def after_epoch(self, learn: Learner) -> None:
        if self._out is not None and learn.is_last_phase:
            self._out.update(self.render(learn))

    def render(self, learn: Learner) -> HTMLText:
        """The bar and its line of text, as they stand now."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        done = learn.step - self._first_step
        total = max(learn.total_steps, learn.step, 1)
        eta = (total - learn.step) * elapsed / done if done > 0 else None
        share = learn.step / total
        for budget in (cb for cb in learn.callbacks if isinstance(cb, WallClockBudget)):
            # under --train.minutes the fit ends with the budget, often before its last step
            share = max(share, budget.fraction())
            eta = budget.seconds_left() if eta is None else min(eta, budget.seconds_left())
        loss = "-" if self._loss is None else f"{self._loss:.4g}"
        text = (
            f"epoch {learn.epoch + 1}/{learn.n_epochs}  step {learn.step}/{total}  loss {loss}  "
            f"{self._images / elapsed:.0f} img/s  elapsed {_fmt_duration(elapsed)}  "
            f"ETA {_fmt_duration(eta)}"
        )
        bar = f'<progress value="{share:.4f}" max="1" style="width:40%"></progress>'
        return HTMLText(f"<div>{bar} <code>{html.escape(text)}</code></div>", text)


class LivePlotCB(Callback):
    """A plot of `train/loss` (every report) and the epoch means of the training and
    validation losses, redrawn every `every` loss reports, at each epoch end and after the fit.

    `history` keeps the points: {metric name: [(step, value), ...]}.
    """

    order = 41
    METRICS = ("train/loss", "epoch/train_loss", "epoch/valid_loss")

    def __init__(
        self, *, every: int = 5, log_y: bool = True, dpi: int = 80, display: Display | None = None
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1 report, got {every}")
        self.every, self.log_y, self.dpi, self._display = every, log_y, dpi, display
        self.history: dict[str, list[tuple[int, float]]] = {name: [] for name in self.METRICS}
        self._out: _Output | None = None
        self._reports = 0

    def before_fit(self, learn: Learner) -> None:
        display = self._display or notebook_display()
        self._out = _Output(display) if display and learn.is_main_process else None

    def on_report(self, learn: Learner, name: str, value: float, step: int) -> None:
        if name not in self.history:
            return
        self.history[name].append((step, float(value)))
        if name == "train/loss":
            self._reports += 1
            if self._out is not None and self._reports % self.every == 0:
                self._out.update(self.render())

    def after_epoch(self, learn: Learner) -> None:
        if self._out is not None and learn.is_last_phase:
            self._out.update(self.render())

    def after_fit(self, learn: Learner) -> None:
        if self._out is not None:
            self._out.update(self.render())

    def render(self) -> PNG:
        """The plot as it stands now, as PNG bytes."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 3.2), dpi=self.dpi)
        ax = fig.subplots()
        styles = {
            "train/loss": {"lw": 1, "marker": ".", "ms": 3},
            "epoch/train_loss": {"marker": "o"},
        }
        for name, points in self.history.items():
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, label=name, **styles.get(name, {"marker": "s"}))
        ax.set(xlabel="step", ylabel="loss", yscale="log" if self.log_y else "linear")
        if any(self.history.values()):
            ax.legend(fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return PNG(buffer.getvalue())
