"""LivePlotCB and NotebookProgressCB: silent outside a notebook; with a display, one output
updated in place, holding every reported loss and the fit's progress."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

from test_learner import tiny_learner
from test_progress import FakeClock, TickCB

from difflab.training.callback import Callback


class FakeDisplay:
    """IPython.display.display's contract: display(obj, display_id=True) -> handle.update(obj)."""

    def __init__(self) -> None:
        self.shown: list = []  # every object shown, first display and updates alike
        self.calls = 0

    def __call__(self, obj, *, display_id=None):
        assert display_id is True  # an updatable output, not a new one per frame
        self.calls += 1
        self.shown.append(obj)
        return SimpleNamespace(update=self.shown.append)


class Reports(Callback):
    """The losses the Learner reported, seen independently of the plot."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, float]] = []

    def on_report(self, learn, name, value, step):
        self.rows.append((name, step, value))


def test_outside_a_notebook_both_callbacks_are_silent_but_keep_the_history():
    from difflab.training.callbacks import LivePlotCB, NotebookProgressCB, in_notebook
    from difflab.training.callbacks.live import notebook_display

    assert not in_notebook() and notebook_display() is None  # pytest is no Jupyter kernel
    plot, reports = LivePlotCB(), Reports()
    tiny_learner([plot, NotebookProgressCB(), reports], n=96).fit(2)
    assert plot._out is None
    assert plot.history["train/loss"] == [(s, v) for n, s, v in reports.rows if n == "train/loss"]


def test_in_notebook_means_an_ipython_shell_with_a_kernel(monkeypatch):
    from difflab.training.callbacks import in_notebook

    terminal = SimpleNamespace(get_ipython=lambda: SimpleNamespace())  # plain IPython REPL
    monkeypatch.setitem(sys.modules, "IPython", terminal)
    assert not in_notebook()
    kernel = SimpleNamespace(get_ipython=lambda: SimpleNamespace(kernel=object()))
    monkeypatch.setitem(sys.modules, "IPython", kernel)
    assert in_notebook()


def test_live_plot_updates_one_output_with_every_reported_loss():
    from PIL import Image

    from difflab.training.callbacks import LivePlotCB

    display, reports = FakeDisplay(), Reports()
    plot = LivePlotCB(every=2, display=display)
    # 96 images in batches of 8: 12 steps an epoch; MetricsCB is not in a bare Learner, so
    # the reports come from the test's own loss reporter
    learn = tiny_learner([plot, reports, LossReporter()], n=96, valid=True)
    learn.fit(2)
    losses = [(s, v) for n, s, v in reports.rows if n == "train/loss"]
    assert len(losses) == 24 and plot.history["train/loss"] == losses
    assert [p[0] for p in plot.history["epoch/valid_loss"]] == [12, 24]
    # one display, then updates: every 2nd loss report (12), each epoch end (2), after fit (1)
    assert display.calls == 1 and len(display.shown) == 12 + 2 + 1
    png = display.shown[-1]._repr_png_()
    assert Image.open(io.BytesIO(png)).size == (6 * 80, round(3.2 * 80))


class LossReporter(Callback):
    """Reports every batch's loss as train/loss and epoch means as MetricsCB names them."""

    def before_epoch(self, learn):
        self.losses = []

    def after_batch(self, learn):
        self.losses.append(float(learn.loss.detach()))
        if learn.training:
            learn.report("train/loss", self.losses[-1])

    def after_epoch(self, learn):
        name = "epoch/train_loss" if learn.training else "epoch/valid_loss"
        learn.report(name, sum(self.losses) / len(self.losses))


def test_progress_bar_shows_steps_loss_and_eta(monkeypatch):
    from difflab.training.callbacks import NotebookProgressCB
    from difflab.training.callbacks import live as live_module

    clock = FakeClock(10.0)  # 10 s per step, 12 steps an epoch, 2 epochs
    monkeypatch.setattr(live_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    display = FakeDisplay()
    bar = NotebookProgressCB(every=5, display=display)
    tiny_learner([bar, TickCB(clock), LossReporter()], n=96).fit(2)
    texts = [repr(frame) for frame in display.shown]
    assert display.calls == 1 and len(texts) == 4 + 2  # steps 5, 10, 15, 20 and 2 epoch ends
    assert texts[0].startswith("epoch 1/2  step 5/24  loss ")
    assert texts[0].endswith("elapsed 50s  ETA 3m10s")  # 19 steps left at 10 s each
    assert texts[0].endswith("  1 img/s  elapsed 50s  ETA 3m10s")  # 19 steps left at 10 s
    assert texts[-1].startswith("epoch 2/2  step 24/24  loss ") and texts[-1].endswith("ETA 0s")
    assert '<progress value="1.0000" max="1"' in display.shown[-1]._repr_html_()


def test_progress_bar_of_a_budgeted_fit_follows_the_budget(monkeypatch):
    from difflab.training.callbacks import NotebookProgressCB
    from difflab.training.callbacks import live as live_module
    from difflab.training.callbacks.budget import WallClockBudget

    clock = FakeClock(10.0)  # 24 steps would take 240 s; the budget is 65 s
    monkeypatch.setattr(live_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    display = FakeDisplay()
    callbacks = [NotebookProgressCB(every=5, display=display), TickCB(clock)]
    callbacks.append(WallClockBudget(65.0, clock=clock.perf_counter))
    tiny_learner(callbacks, n=96).fit(2)
    at_step_5 = display.shown[0]
    assert repr(at_step_5).endswith("ETA 15s")  # the budget's 65 - 50 s, not 19 steps x 10 s
    assert '<progress value="0.7692" max="1"' in at_step_5._repr_html_()  # 50 s of 65 s
