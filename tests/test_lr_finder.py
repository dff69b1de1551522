"""The lr finder: its suggestion rule on curves with a closed-form answer, the smoothed loss it
records, where it stops, and a real range test that leaves the model untouched."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from resume_worker import denoise_objective, make_data, make_model

from difflab.training import CancelFitException
from difflab.training.callbacks import LRFinderCB, lr_find, suggest_lr


def test_suggestion_is_the_lr_at_the_smoothed_minimum_over_ten():
    # loss = 1 + (log10(lr) + 2.5)^2 on lrs 1e-6 .. 10, ten per decade: minimum at 10^-2.5
    lrs = [10 ** (-6 + i / 10) for i in range(71)]
    losses = [1 + (math.log10(lr) + 2.5) ** 2 for lr in lrs]
    assert suggest_lr(lrs, losses) == pytest.approx(10**-3.5, rel=1e-12)
    # a loss still falling at the last lr: the last lr / 10
    assert suggest_lr(lrs, [-math.log(lr) for lr in lrs]) == pytest.approx(1.0, rel=1e-12)
    # ties go to the smaller lr; only the recorded prefix of lrs counts
    assert suggest_lr([1e-3, 1e-2, 1e-1], [2.0, 1.0, 1.0]) == pytest.approx(1e-3)
    assert suggest_lr([1e-3, 1e-2, 1e-1], [2.0, 1.0]) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="no finite loss"):
        suggest_lr([1e-3], [])
    with pytest.raises(ValueError, match="2 losses but only 1"):
        suggest_lr([1e-3], [1.0, 2.0])


def _drive(finder: LRFinderCB, loss_at) -> None:
    """Runs the finder's batch events on a fake learner whose loss is loss_at(lr)."""
    learn = SimpleNamespace(optimizer=SimpleNamespace(param_groups=[{"lr": 0.0}]), loss=None)
    with pytest.raises(CancelFitException):
        for _ in range(10_000):
            finder.before_batch(learn)
            learn.loss = torch.tensor(loss_at(learn.optimizer.param_groups[0]["lr"]))
            finder.after_loss(learn)


def test_finder_on_a_closed_form_curve_suggests_its_minimum_over_ten_and_stops_at_4x():
    # lrs 10^(-6 + i/10); loss 1 + (log10(lr) + 3)^2 has its minimum 1 at lr = 1e-3 (i = 30)
    # and passes 4 x 1 where (log10(lr) + 3)^2 > 3, first at i = 48 (lr = 10^-1.2)
    finder = LRFinderCB(start_lr=1e-6, end_lr=1e2, n_steps=81, smoothing=0.0)
    _drive(finder, lambda lr: 1 + (math.log10(lr) + 3) ** 2)
    result = finder.result()
    assert len(result.lrs) == len(result.losses) == 49
    assert result.lrs[0] == pytest.approx(1e-6) and result.lrs[-1] == pytest.approx(10**-1.2)
    assert result.suggestion == pytest.approx(1e-4, rel=1e-9)


def test_finder_records_the_bias_corrected_moving_average():
    raw = [4.0, 2.0, 3.0, 1.0, 5.0]
    finder = LRFinderCB(start_lr=1e-3, end_lr=1e-1, n_steps=len(raw), smoothing=0.9)
    values = iter(raw)
    _drive(finder, lambda lr: next(values))  # stops at n_steps
    # the bias-corrected EMA is the mean of the losses so far weighted by 0.9^(age)
    expected = []
    for n in range(1, len(raw) + 1):
        weights = [0.9 ** (n - 1 - i) for i in range(n)]
        expected.append(sum(w * x for w, x in zip(weights, raw)) / sum(weights))
    assert finder.losses == pytest.approx(expected, rel=1e-12)
    assert finder.losses[0] == 4.0  # not 0.1 x 4: the first value is not biased towards 0


def test_lr_finder_stops_when_the_loss_explodes():
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(
        model,
        make_data(n=96),
        denoise_objective,
        start_lr=1e-5,
        end_lr=1e3,
        n_steps=200,
        optimizer=torch.optim.SGD,
    )
    assert len(result.lrs) < 200  # stopped early: SGD at lr 1e3 diverges
    assert all(a < b for a, b in zip(result.lrs, result.lrs[1:]))
    assert result.lrs[0] == pytest.approx(1e-5)
    best = min(range(len(result.losses)), key=result.losses.__getitem__)
    assert result.suggestion == result.lrs[best] / 10  # the rule on the recorded curve
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
