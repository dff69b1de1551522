"""ProgressCB: plain log lines with the ETA of the fit (or of its wall-clock budget), and the
epoch and batch bars on a terminal."""

from __future__ import annotations

import logging

from test_learner import tiny_learner

from difflab.training.callback import Callback
from difflab.training.learner import Learner


class FakeClock:
    """time.perf_counter for ProgressCB, advanced by `seconds` at every training batch."""

    def __init__(self, seconds: float):
        self.now, self.seconds = 1000.0, seconds

    def perf_counter(self) -> float:
        return self.now


class TickCB(Callback):
    order = -1

    def __init__(self, clock: FakeClock):
        self.clock = clock

    def before_batch(self, learn: Learner) -> None:
        self.clock.now += self.clock.seconds


def test_plain_progress_lines_carry_the_eta_of_the_fit(monkeypatch, caplog):
    from types import SimpleNamespace

    from difflab.training.callbacks import ProgressCB
    from difflab.training.callbacks import progress as progress_module

    clock = FakeClock(10.0)  # 10 s per step, 12 steps per epoch, 2 epochs: 240 s in all
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    learn = tiny_learner([ProgressCB(log_every=0.0, tty=False), TickCB(clock)], n=96)
    with caplog.at_level(logging.INFO, logger="difflab.training"):
        learn.fit(2)
    lines = {int(m.split()[3]): m for r in caplog.records if " ETA " in (m := r.getMessage())}
    assert sorted(lines) == list(range(1, 25))  # one line per step (log_every=0)
    assert lines[1].endswith("ETA 3m50s")  # 23 steps left at 10 s each
    assert lines[13].startswith("epoch 2/2 step 13") and lines[13].endswith("ETA 1m50s")
    assert lines[23].endswith("ETA 10s") and lines[24].endswith("ETA 0s")


def test_progress_eta_of_a_budgeted_fit_is_the_budget_left(monkeypatch, caplog):
    from types import SimpleNamespace

    from difflab.training.callbacks import ProgressCB
    from difflab.training.callbacks import progress as progress_module
    from difflab.training.callbacks.budget import WallClockBudget

    clock = FakeClock(10.0)  # 10 s per step: 24 steps would take 240 s, the budget is 65 s
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    budget = WallClockBudget(65.0, clock=clock.perf_counter)
    callbacks = [ProgressCB(log_every=0.0, tty=False), TickCB(clock), budget]
    learn = tiny_learner(callbacks, n=96)
    with caplog.at_level(logging.INFO, logger="difflab.training"):
        learn.fit(2)
    lines = {int(m.split()[3]): m for r in caplog.records if " ETA " in (m := r.getMessage())}
    assert sorted(lines) == list(range(1, 8))  # the budget ends the fit after step 7 (70 s)
    assert lines[1].endswith("ETA 55s")  # 65 s budget - 10 s spent, not 23 steps x 10 s
    assert lines[6].endswith("ETA 5s") and lines[7].endswith("ETA 0s")


def test_terminal_progress_has_an_epoch_bar(capsys):
    from difflab.training.callbacks import ProgressCB

    tiny_learner([ProgressCB(tty=True)]).fit(2)
    err = capsys.readouterr().err
    assert "fit: 100%" in err and "2/2" in err  # the epoch bar reached the last epoch
    assert "epoch 2/2" in err  # the batch bar of the second epoch
