"""EMA of weights against its closed form, and the EMA callback inside a Learner."""

from __future__ import annotations

import pytest
import torch
from resume_worker import denoise_objective, make_data, make_model
from torch import nn

from difflab.models.ema import ema_decay_at, ema_update
from difflab.training import Callback, Learner
from difflab.training.callbacks import EMACB


def test_decay_warmup_closed_form():
    # min(decay, (1 + t) / (10 + t)): 0.1 at t=0, 0.5 at t=8, capped at decay later
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(8, 0.999) == pytest.approx(0.5)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(0, 0.9, warmup=0) == 0.9
    with pytest.raises(ValueError, match="decay must be in"):
        ema_decay_at(0, 1.0)


def test_update_matches_the_geometric_sum():
    # With a constant decay d and weights w_1..w_n after e_0:
    #   e_n = d^n e_0 + sum_k (1 - d) d^(n-k) w_k
    d, n = 0.8, 6
    ema, model = nn.Linear(3, 2), nn.Linear(3, 2)
    e0 = [p.detach().clone().double() for p in ema.parameters()]
    history = []
    for _ in range(n):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        history.append([p.detach().clone().double() for p in model.parameters()])
        ema_update(ema, model, d)
    for i, p in enumerate(ema.parameters()):
        expected = d**n * e0[i] + sum(
            (1 - d) * d ** (n - k) * history[k - 1][i] for k in range(1, n + 1)
        )
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-5, atol=1e-6)


def test_buffers_are_copied():
    ema, model = nn.BatchNorm1d(4), nn.BatchNorm1d(4)
    model.running_mean.fill_(3.0)
    ema_update(ema, model, 0.99)
    assert torch.equal(ema.running_mean, model.running_mean)


def test_callback_follows_the_recursion_over_training():
    snapshots = []

    class Snapshot(Callback):
        order = 20  # after the step, before the EMA update (order 30)

        def after_step(self, learn):
            snapshots.append({k: v.clone() for k, v in learn.model.state_dict().items()})

    model = make_model()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    ema = EMACB(0.95, warmup=10.0)
    Learner(model, make_data(n=48), denoise_objective, lr=1e-2, callbacks=[Snapshot(), ema]).fit(2)
    for t, weights in enumerate(snapshots):
        d = ema_decay_at(t, 0.95, warmup=10.0)
        expected = {k: d * expected[k] + (1 - d) * weights[k] for k in expected}
    for k, v in ema.model.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-5, atol=1e-6)
    assert not ema.model.training
    assert not any(p.requires_grad for p in ema.model.parameters())
