"""LR schedules: one-cycle against torch's OneCycleLR, cosine with warm-up in closed form, the
schedule in a fit, and the same schedule on a wall-clock budget's clock."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from test_learner import tiny_learner
from torch import nn

from difflab.training import Callback
from difflab.training.callbacks import LRScheduleCB
from difflab.training.callbacks.budget import RESOLUTION, WallClockBudget, budget_schedule
from difflab.training.callbacks.schedule import cosine_warmup_lr, onecycle_lr, onecycle_momentum


def test_onecycle_matches_torch_onecycle_lr():
    total, max_lr, pct = 50, 0.1, 0.25
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=total, pct_start=pct
    )
    cb = LRScheduleCB("onecycle", warmup=pct)
    for step in range(total):
        lr, beta1 = opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]
        assert cb.lr_at(step, total, max_lr) == pytest.approx(lr, rel=1e-12, abs=1e-15)
        assert onecycle_momentum(step, total, pct_start=pct) == pytest.approx(beta1, rel=1e-12)
        assert cb.momentum_at(step, total) == onecycle_momentum(step, total, pct_start=pct)
        opt.step()
        sched.step()
    assert onecycle_lr(0, total, max_lr=max_lr) == pytest.approx(max_lr / 25)


@pytest.mark.parametrize(("total", "pct"), [(10, 0.1), (20, 0.05), (4, 0.25)])
def test_onecycle_warmup_of_one_step_starts_at_the_peak(total, pct):
    # pct * total = 1: torch's OneCycleLR divides by zero here (a 640-image run of 10 steps
    # crashed); the curve starts at max_lr and anneals to max_lr / 25 / 1e4 on the last step
    lrs = [onecycle_lr(step, total, max_lr=0.1, pct_start=pct) for step in range(total)]
    assert lrs[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(0.1 / 25 / 1e4)
    assert onecycle_momentum(0, total, pct_start=pct) == pytest.approx(0.85)  # beta1 at its low


def test_cosine_with_warmup_closed_form():
    total, warm, lr = 100, 10, 2.0
    assert cosine_warmup_lr(0, total, max_lr=lr, warmup_steps=warm) == 0.0
    assert cosine_warmup_lr(5, total, max_lr=lr, warmup_steps=warm) == pytest.approx(1.0)
    assert cosine_warmup_lr(10, total, max_lr=lr, warmup_steps=warm) == pytest.approx(2.0)
    assert cosine_warmup_lr(55, total, max_lr=lr, warmup_steps=warm) == pytest.approx(1.0)
    assert cosine_warmup_lr(100, total, max_lr=lr, warmup_steps=warm) == pytest.approx(0.0)
    s = 37  # (1 + cos(pi * 27/90)) / 2
    expected = lr * (1 + math.cos(math.pi * 27 / 90)) / 2
    assert cosine_warmup_lr(s, total, max_lr=lr, warmup_steps=warm) == pytest.approx(expected)


def test_schedule_is_applied_every_batch():
    seen = []

    class LRSpy(Callback):
        order = 5

        def before_batch(self, learn):
            seen.append(learn.optimizer.param_groups[0]["lr"])

    learn = tiny_learner([LRScheduleCB("cosine", warmup=0.25), LRSpy()], n=64, lr=0.5)
    learn.fit(2)  # 16 steps, 4 of warm-up
    assert seen == [
        pytest.approx(cosine_warmup_lr(s, 16, max_lr=0.5, warmup_steps=4)) for s in range(16)
    ]


class FakeClock:
    """A perf_counter that reads whatever the test sets."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def _optimizer(kind: str) -> torch.optim.Optimizer:
    params = [nn.Parameter(torch.zeros(2))]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=1.0, momentum=0.9)
    return torch.optim.Adam(params, lr=1.0, betas=(0.9, 0.999))


def _momentum(optimizer: torch.optim.Optimizer) -> float:
    group = optimizer.param_groups[0]
    return group["momentum"] if "momentum" in group else group["betas"][0]


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_budget_schedule_equals_the_step_schedule_at_the_same_fraction(kind, schedule):
    """At elapsed = budget x k / n on a fake clock, the budget's schedule sets the lr and the
    momentum (SGD's momentum, Adam's beta1) that the step schedule sets at step k of n."""
    seconds, max_lr = 90.0, 3e-3
    clock = FakeClock()
    budget = WallClockBudget(seconds, clock=clock)
    by_time = budget_schedule(LRScheduleCB(schedule, warmup=0.2), budget)
    by_step = LRScheduleCB(schedule, warmup=0.2)
    budget.before_fit(None)  # the budget's clock starts now
    momenta = set()
    for k in (0, 1, 7_777, 19_999, 20_000, 51_234, 99_999):
        clock.now = 500.0 + seconds * k / RESOLUTION
        timed = SimpleNamespace(training=True, lr=max_lr, optimizer=_optimizer(kind))
        stepped = SimpleNamespace(
            training=True, lr=max_lr, optimizer=_optimizer(kind), step=k, total_steps=RESOLUTION
        )
        by_time.before_batch(timed)
        by_step.before_batch(stepped)
        assert timed.optimizer.param_groups[0]["lr"] == stepped.optimizer.param_groups[0]["lr"]
        assert _momentum(timed.optimizer) == _momentum(stepped.optimizer)
        assert stepped.optimizer.param_groups[0]["lr"] == by_step.lr_at(k, RESOLUTION, max_lr)
        momenta.add(_momentum(stepped.optimizer))
    if schedule == "onecycle":  # it moves the momentum: the comparison above compared values
        assert len(momenta) > 3
    else:  # the others leave the optimiser's own
        assert momenta == {0.9}


def test_budget_schedule_holds_its_end_past_the_budget_and_keeps_the_options():
    clock = FakeClock()
    budget = WallClockBudget(10.0, clock=clock)
    base = LRScheduleCB("onecycle", warmup=0.4, cycle_momentum=False)
    timed = budget_schedule(base, budget)
    assert (timed.schedule, timed.warmup, timed.cycle_momentum) == ("onecycle", 0.4, False)
    budget.before_fit(None)
    clock.now += 25.0  # 2.5 budgets: the schedule stays at its last point
    learn = SimpleNamespace(training=True, lr=1.0, optimizer=_optimizer("adam"))
    timed.before_batch(learn)
    assert learn.optimizer.param_groups[0]["lr"] == onecycle_lr(
        RESOLUTION - 1, RESOLUTION, max_lr=1.0, pct_start=0.4
    )
    assert learn.optimizer.param_groups[0]["betas"] == (0.9, 0.999)  # cycle_momentum=False
    with pytest.raises(ValueError, match="steps >= 2"):
        LRScheduleCB("cosine", steps=1)
