"""noisify moments, eps/x0/v conversions, objectives (min-SNR weights) and noise predictors."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import (
    as_noise_predictor,
    eps_from_v,
    eps_from_x0,
    linear_schedule,
    make_objective,
    noisify,
    snr,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)

SCHED = linear_schedule(1000)


def test_noisify_matches_eq_4_and_its_moments():
    c = 0.8
    x0 = torch.full((40000, 1), c, dtype=torch.float64)
    x_t, t, eps = noisify(x0, SCHED.alpha_bar, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) <= 999
    ab = SCHED.alpha_bar[t].unsqueeze(1)
    torch.testing.assert_close(x_t, ab.sqrt() * c + (1 - ab).sqrt() * eps)
    n = x0.shape[0]
    assert abs(t.double().mean().item() - 499.5) < 4 * 288.7 / n**0.5  # U{0..999}: sd 288.7
    assert abs(eps.mean().item()) < 4 / n**0.5 and abs(eps.var().item() - 1) < 4 * 2**0.5 / n**0.5
    # marginal of x_t over uniform t: E = c * mean sqrt(ab), E[x^2] = mean(ab c^2 + 1 - ab)
    mean = c * SCHED.alpha_bar.sqrt().mean().item()
    second = (SCHED.alpha_bar * c**2 + 1 - SCHED.alpha_bar).mean().item()
    sd = (second - mean**2) ** 0.5
    assert abs(x_t.mean().item() - mean) < 4 * sd / n**0.5
    assert abs(x_t.pow(2).mean().item() - second) < 0.03


def test_noisify_uses_the_global_rng_by_default():
    x0 = torch.zeros(4, 1, 2, 2)
    torch.manual_seed(7)
    first = noisify(x0, SCHED.alpha_bar)
    torch.manual_seed(7)
    second = noisify(x0, SCHED.alpha_bar)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_noisify_takes_a_schedule_or_its_alpha_bar_table():
    # The signature is noisify(x0, schedule, generator); the objective passes the table.
    x0 = torch.randn(16, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    from_schedule = noisify(x0, SCHED, generator=torch.Generator().manual_seed(3))
    from_table = noisify(x0, SCHED.alpha_bar, generator=torch.Generator().manual_seed(3))
    for a, b in zip(from_schedule, from_table):
        assert torch.equal(a, b)
    x_t, t, eps = from_schedule  # and it is eq. 4 with the schedule's own alpha_bar
    ab = SCHED.alpha_bar[t].reshape(-1, 1, 1, 1).float()
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    with pytest.raises(TypeError, match="Schedule"):
        noisify(x0, 0.5)  # type: ignore[arg-type]


def test_parameterisations_round_trip():
    g = torch.Generator().manual_seed(0)
    x0, eps = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    ab = torch.rand(5, 1, generator=g, dtype=torch.float64) * 0.98 + 0.01
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = v_from_x0_eps(x0, eps, ab)
    torch.testing.assert_close(x0_from_eps(x_t, eps, ab), x0)
    torch.testing.assert_close(eps_from_x0(x_t, x0, ab), eps)
    torch.testing.assert_close(x0_from_v(x_t, v, ab), x0)
    torch.testing.assert_close(eps_from_v(x_t, v, ab), eps)
    assert x0_from_eps(x_t, eps, 0.5).shape == x_t.shape  # python floats work too


def _ideal_models(c: float):
    """Models that know the data is the point c, in each parameterisation."""

    def ab_of(t, x):
        return SCHED.alpha_bar[t].to(x.dtype).reshape(-1, 1, 1, 1)

    def eps_model(x_t, t):
        return eps_from_x0(x_t, torch.full_like(x_t, c), ab_of(t, x_t))

    def x0_model(x_t, t):
        return torch.full_like(x_t, c)

    def v_model(x_t, t):
        ab = ab_of(t, x_t)
        return v_from_x0_eps(
            torch.full_like(x_t, c), eps_from_x0(x_t, torch.full_like(x_t, c), ab), ab
        )

    return {"eps": eps_model, "x0": x0_model, "v": v_model}


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_ideal_model_has_zero_loss_and_noise_predictor_recovers_eps(objective):
    model = _ideal_models(0.3)[objective]
    batch = (torch.full((16, 1, 4, 4), 0.3), torch.zeros(16, dtype=torch.int64))
    loss = make_objective(SCHED, objective=objective)(model, batch)
    assert loss.dtype == torch.float32 and loss.item() < 1e-8
    x_t = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([5, 500, 990])
    eps = as_noise_predictor(model, SCHED, objective)(x_t, t)
    torch.testing.assert_close(eps, _ideal_models(0.3)["eps"](x_t, t))


def test_unweighted_eps_loss_is_plain_mse_under_bf16_autocast():
    def model(x_t, t):
        return (x_t * 0.5).bfloat16()

    x0 = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = make_objective(SCHED)(model, (x0, None))
    torch.manual_seed(3)
    x_t, t, eps = noisify(x0, SCHED.alpha_bar)
    expected = torch.nn.functional.mse_loss(model(x_t, t).float(), eps)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected)


def test_min_snr_makes_all_objectives_the_same_x0_space_loss():
    """Hang et al. 2023: weight min(SNR, gamma) on the x0 error, whatever the network predicts."""
    c, gamma = 0.3, 5.0
    x0 = torch.full((64, 1, 2, 2), c)
    seen = {}

    def x0_hat_of(x_t):  # a deliberately wrong denoiser
        return c + 0.2 * torch.tanh(x_t)

    def make(objective):
        def model(x_t, t):
            seen["t"], x_hat = t, x0_hat_of(x_t)
            ab = SCHED.alpha_bar[t].float().reshape(-1, 1, 1, 1)
            eps_hat = eps_from_x0(x_t, x_hat, ab)
            seen["err"] = (x_hat - c).pow(2).flatten(1).mean(1)
            return {"x0": x_hat, "eps": eps_hat, "v": v_from_x0_eps(x_hat, eps_hat, ab)}[objective]

        return model

    losses = {}
    for objective in ("eps", "x0", "v"):
        torch.manual_seed(11)
        losses[objective] = make_objective(SCHED, objective=objective, min_snr_gamma=gamma)(
            make(objective), (x0, None)
        )
    ratio = snr(SCHED.alpha_bar[seen["t"]])
    expected = (ratio.clamp(max=gamma) * seen["err"].double()).mean().float()
    for objective, loss in losses.items():
        torch.testing.assert_close(loss, expected, rtol=2e-4, atol=0, msg=objective)


def test_objective_rejects_bad_options():
    with pytest.raises(ValueError, match="--diffusion.objective"):
        make_objective(SCHED, objective="score")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--diffusion.min-snr-gamma"):
        make_objective(SCHED, min_snr_gamma=0.0)
