"""Class-conditional generation with classifier-free guidance (Ho & Salimans 2022): the guidance
wrapper's exact cases, the null-class rate in training, every sampler guided, honest network
evaluation counts, class selection, exact resume of a conditional run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from difflab.cli.main import main
from difflab.config import SampleConfig, load_config
from difflab.diffusion import linear_schedule, make_objective
from difflab.diffusion.guidance import classifier_free_guidance
from difflab.evaluation import proportional_labels
from difflab.experiment import build_learner, build_model
from difflab.generation import class_label, generate_images, network_evaluations
from difflab.io.trained import load_trained, save_trained, trained_model
from difflab.samplers import SAMPLERS

NULL = 5


def labelled(x_t, t, y):
    """A stand-in network whose answer depends on the label in a known way."""
    return torch.tanh(x_t) * (1 + y.float().reshape(-1, 1, 1, 1)) + t.float().reshape(-1, 1, 1, 1)


def test_guidance_zero_is_unconditional_one_conditional_and_both_exact():
    x, t, y = torch.randn(4, 1, 3, 3), torch.full((4,), 7), torch.tensor([0, 1, 2, 3])
    null = torch.full_like(y, NULL)
    for scale, expected in ((0.0, labelled(x, t, null)), (1.0, labelled(x, t, y))):
        got = classifier_free_guidance(labelled, null_class=NULL, scale=scale)(x, t, y)
        assert torch.equal(got, expected)  # bit for bit: no interpolation arithmetic


def test_guidance_interpolates_in_one_batched_forward():
    calls = []

    def spy(x_t, t, y):
        calls.append(y.clone())
        return labelled(x_t, t, y)

    x, t, y = torch.randn(3, 1, 2, 2), torch.full((3,), 4), torch.tensor([2, 0, 1])
    got = classifier_free_guidance(spy, null_class=NULL, scale=2.5)(x, t, y)
    eps_c, eps_u = labelled(x, t, y), labelled(x, t, torch.full_like(y, NULL))
    torch.testing.assert_close(got, eps_u + 2.5 * (eps_c - eps_u))
    assert len(calls) == 1 and calls[0].tolist() == [2, 0, 1, NULL, NULL, NULL]


def test_guidance_in_an_interval_is_the_conditional_prediction_outside_it():
    # Kynkaanniemi et al. 2024: guided at t_min <= t <= t_max, the conditional model (w = 1,
    # one forward of B images) elsewhere
    batches = []

    def spy(x_t, t, y):
        batches.append(len(y))
        return labelled(x_t, t, y)

    guided = classifier_free_guidance(spy, null_class=NULL, scale=3.0, t_interval=(100, 500))
    x, y = torch.randn(2, 1, 2, 2), torch.tensor([1, 3])
    null = torch.full_like(y, NULL)
    for t_value, inside in ((600, False), (500, True), (100, True), (99, False)):
        t = torch.full((2,), t_value)
        eps_c, eps_u = labelled(x, t, y), labelled(x, t, null)
        expected = eps_u + 3.0 * (eps_c - eps_u) if inside else eps_c
        torch.testing.assert_close(guided(x, t, y), expected)
    assert batches == [2, 4, 4, 2]


@pytest.mark.parametrize(("interval", "guided_calls"), [("0,600", 6), ("500,999", 5), ("", 10)])
def test_an_interval_counts_the_evaluations_made(conditional, interval, guided_calls):
    _, trained = conditional
    images = []
    hook = trained.model.register_forward_pre_hook(lambda _m, args: images.append(len(args[0])))
    sample = SampleConfig(steps=10, n=3, guidance=2.0, guide_interval=interval)
    try:
        generate_images(trained, sample, bf16=False, progress=False)
    finally:
        hook.remove()
    # DDIM 10 on T = 1000: t = 999, 899, ..., 99; 599..99 are six of them, 999..599 five
    assert sum(images) == 3 * network_evaluations(trained, sample)
    assert network_evaluations(trained, sample) == 10 + guided_calls


def test_the_null_class_rate_in_training_batches_matches_cond_drop():
    seen = []

    def model(x_t, t, y):
        seen.append(y)
        return torch.zeros_like(x_t)

    objective = make_objective(linear_schedule(100), null_class=NULL, cond_drop=0.1)
    torch.manual_seed(0)
    for _ in range(40):
        objective(model, (torch.zeros(500, 1, 2, 2), torch.randint(0, NULL, (500,))))
    rate = float((torch.cat(seen) == NULL).float().mean())
    # 20,000 Bernoulli(0.1) draws: standard deviation 0.0021; 5 of them is the tolerance
    assert rate == pytest.approx(0.1, abs=5 * math.sqrt(0.1 * 0.9 / 20_000))


@pytest.fixture(scope="module")
def conditional():
    config = load_config(preset="tiny", overrides={"model.num_classes": "4"})
    torch.manual_seed(0)
    model = build_model(config, (1, 8, 8))
    for p in model.parameters():  # zero-initialised outputs would hide the labels' effect
        torch.nn.init.normal_(p, std=0.05)
    return config, trained_model(model.eval(), config, (1, 8, 8), meta={"classes": list("abcd")})


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_registered_sampler_runs_guided_and_counts_two_evaluations(conditional, name):
    _, trained = conditional
    calls = []
    hook = trained.model.register_forward_pre_hook(lambda _m, args: calls.append(len(args[0])))
    try:
        sample = SampleConfig(sampler=name, steps=4, n=3, guidance=2.0)
        images = generate_images(trained, sample, labels=torch.tensor([0, 3, 1]), bf16=False,
                                 progress=False)  # fmt: skip
    finally:
        hook.remove()
    assert images.shape == (3, 1, 8, 8) and torch.isfinite(images).all()
    assert all(batch == 6 for batch in calls)  # conditional and null halves in one forward
    assert network_evaluations(trained, sample) == 2 * len(calls)
    unguided = SampleConfig(sampler=name, steps=4, n=3, guidance=1.0)
    assert network_evaluations(trained, unguided) == len(calls)


def test_labels_change_the_images_and_class_names_resolve(conditional):
    _, trained = conditional
    sample = SampleConfig(steps=3, n=2, guidance=3.0)
    a = generate_images(trained, sample, labels=torch.tensor([0, 0]), bf16=False, progress=False)
    b = generate_images(trained, sample, labels=torch.tensor([2, 2]), bf16=False, progress=False)
    assert not torch.allclose(a, b)
    assert class_label(trained, "c") == 2 and class_label(trained, "3") == 3
    with pytest.raises(ValueError, match="'shoe' is not a class of this model"):
        class_label(trained, "shoe")


def test_proportional_labels_follow_the_training_counts():
    labels = proportional_labels(10, [6, 3, 1])
    assert labels.tolist() == [0] * 6 + [1] * 3 + [2]
    assert torch.bincount(proportional_labels(7, [1, 1, 1])).tolist() == [3, 2, 2]


def test_model_file_records_classes_and_sample_cli_draws_one_class(conditional, tmp_path, capsys):
    config, trained = conditional
    save_trained(tmp_path, trained.model, config, (1, 8, 8), classes=list("abcd"))
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["classes"] == list("abcd") and meta["unet"]["num_classes"] == 4
    assert load_trained(tmp_path).classes == list("abcd")
    args = ["sample", str(tmp_path), "--class", "b", "--guidance", "2", "--n", "3",
            "--steps", "2", "--no-bf16", "--json", "--out", str(tmp_path / "b")]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["labels"] == [1] and summary["guidance"] == 2.0 and summary["nfe"] == 4


def test_an_unconditional_model_refuses_a_class(tmp_path, capsys):
    config = load_config(preset="tiny")
    save_trained(tmp_path, build_model(config, (1, 8, 8)), config, (1, 8, 8))
    assert main(["sample", str(tmp_path), "--class", "3", "--n", "2", "--steps", "2"]) == 2
    assert "--class: this model is unconditional" in capsys.readouterr().err


def test_a_conditional_run_resumes_exactly(tmp_path):
    from difflab.training import Callback, CancelFitException

    class StopAt(Callback):
        order = 200  # after the checkpoint callback

        def after_batch(self, learn):
            if learn.training and learn.step == 5:
                raise CancelFitException

    overrides = {"model.num_classes": "auto", "data.limit": "128", "train.batch_size": "32",
                 "train.checkpoint_every": "3", "train.sample_every": "0",
                 "train.mixed_precision": "no"}  # fmt: skip
    config = load_config(preset="tiny", overrides=overrides)
    straight, _ = build_learner(config, tmp_path / "a", validate=False, progress=False)
    straight.fit(2)
    stopped, _ = build_learner(config, tmp_path / "b", validate=False, progress=False,
                               callbacks=[StopAt()])  # fmt: skip
    stopped.fit(2)
    assert stopped.step == 5
    resumed, _ = build_learner(config, tmp_path / "b", validate=False, progress=False)
    resumed.fit(2, resume=tmp_path / "b")
    assert straight.model.class_embed.weight.shape == (
        11,
        straight.model.class_embed.weight.shape[1],
    )
    for (key, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        assert torch.equal(a, b), key
