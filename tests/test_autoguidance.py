"""Autoguidance (Karras et al. 2024): the guided prediction against the closed form for Gaussian
data, the guidance interval and its honest evaluation count, the guide written during training
and found by every command that loads the run."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from difflab.cli.main import main
from difflab.config import SampleConfig, load_config
from difflab.data.scaling import to_uint8
from difflab.diffusion.guidance import autoguidance, guided_steps
from difflab.experiment import build_model, train_experiment
from difflab.generation import generate_images, network_evaluations
from difflab.io.trained import GUIDE_DIR, load_trained, save_trained, trained_model
from difflab.training import eval_model
from difflab.training.callback import Callback


def gaussian_eps(mean: float, var: float, alpha_bar: float):
    """The exact noise predictor for data x0 ~ N(mean, var) per pixel: x_t ~ N(sqrt(ab) mean,
    ab var + 1 - ab), score -(x - sqrt(ab) mean) / v_t, eps = -sqrt(1 - ab) score."""
    v_t = alpha_bar * var + 1 - alpha_bar

    def predict(x_t, t, *y):
        return math.sqrt(1 - alpha_bar) * (x_t - math.sqrt(alpha_bar) * mean) / v_t

    return predict, v_t


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_guided_eps_is_the_score_of_the_tilted_density(w):
    # D_w = D_0 + w (D_1 - D_0) follows the density p_1^w p_0^(1-w) (Karras et al. 2024, Sec. 3).
    # For two Gaussians that is the Gaussian of precision w/v1 + (1-w)/v0: an independent form.
    ab = 0.4
    main_eps, v1 = gaussian_eps(0.3, 0.05, ab)
    guide_eps, v0 = gaussian_eps(-0.1, 0.2, ab)
    precision = w / v1 + (1 - w) / v0
    centre = (w * math.sqrt(ab) * 0.3 / v1 + (1 - w) * math.sqrt(ab) * -0.1 / v0) / precision
    x = torch.linspace(-2, 2, 9, dtype=torch.float64).reshape(1, 1, 3, 3)
    got = autoguidance(main_eps, guide_eps, scale=w)(x, torch.tensor([500]))
    torch.testing.assert_close(got, math.sqrt(1 - ab) * precision * (x - centre))


def test_the_interval_guides_only_inside_it_and_the_count_says_so():
    calls = {"main": [], "guide": []}

    def spy(name, value):
        def predict(x_t, t):
            calls[name].append(int(t[0]))
            return torch.full_like(x_t, value)

        return predict

    guided = autoguidance(spy("main", 1.0), spy("guide", 0.0), scale=3.0, t_interval=(300, 700))
    x = torch.zeros(2, 1, 2, 2)
    assert torch.equal(guided(x, torch.full((2,), 999)), torch.ones_like(x))  # outside: main
    assert torch.equal(guided(x, torch.full((2,), 500)), torch.full_like(x, 3.0))  # 0 + 3 (1 - 0)
    assert calls == {"main": [999, 500], "guide": [500]}
    assert guided_steps(torch.tensor([999, 700, 500, 300, 299]), (300, 700)) == 3
    assert guided_steps(torch.tensor([999, 500]), None) == 2


def random_tiny(seed: int):
    """A tiny network with every weight random (a fresh UNet's output layer starts at zero, so
    two fresh ones would predict the same)."""
    config = load_config(preset="tiny")
    network = build_model(config, (1, 8, 8))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return trained_model(network, config, (1, 8, 8))


@pytest.fixture
def tiny_with_guide():
    return dataclasses.replace(random_tiny(0), guide=random_tiny(1))


@pytest.mark.parametrize(("interval", "steps"), [("", 10), ("300,700", 10), ("0,999", 4)])
def test_reported_evaluations_are_the_network_calls_made(tiny_with_guide, interval, steps):
    counted = {"images": 0}

    def count(module, args):
        counted["images"] += args[0].shape[0]

    hooks = [m.model.register_forward_pre_hook(count)
             for m in (tiny_with_guide, tiny_with_guide.guide)]  # fmt: skip
    sample = SampleConfig(steps=steps, n=3, autoguidance=2.0, guide_interval=interval)
    generate_images(tiny_with_guide, sample, bf16=False, progress=False)
    for hook in hooks:
        hook.remove()
    assert counted["images"] == 3 * network_evaluations(tiny_with_guide, sample)
    if interval == "300,700":  # DDIM 10 on T=1000: t = 999, 899, ..., 99; 699..399 inside
        assert network_evaluations(tiny_with_guide, sample) == 10 + 4


def test_scale_one_is_the_model_alone_bit_for_bit(tiny_with_guide):
    sample = SampleConfig(steps=3, n=2)
    alone = dataclasses.replace(tiny_with_guide, guide=None)
    torch.testing.assert_close(
        generate_images(tiny_with_guide, sample, bf16=False, progress=False),
        generate_images(alone, sample, bf16=False, progress=False), rtol=0, atol=0,
    )  # fmt: skip
    guided = generate_images(
        tiny_with_guide, dataclasses.replace(sample, autoguidance=2.0), bf16=False, progress=False
    )
    assert not torch.allclose(guided, generate_images(alone, sample, bf16=False, progress=False))


def test_without_a_guide_autoguidance_says_how_to_get_one(tiny_with_guide):
    alone = dataclasses.replace(tiny_with_guide, guide=None)
    with pytest.raises(ValueError, match="--train.guide-at"):
        generate_images(alone, SampleConfig(steps=2, n=1, autoguidance=2.0), progress=False)


@pytest.mark.parametrize("bad", ["700,300", "300", "a,b", "1,2,3", "nan,5"])
def test_a_bad_interval_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="--sample.guide-interval"):
        SampleConfig(guide_interval=bad)


class RecordEMA(Callback):
    """The EMA weights after optimiser step `at` (an independent copy of what the guide holds)."""

    order = 90

    def __init__(self, at):
        self.at, self.state = at, None

    def after_batch(self, learn):
        if learn.training and learn.step == self.at:
            self.state = {k: v.clone() for k, v in eval_model(learn).state_dict().items()}


def test_training_writes_the_ema_model_at_the_share_asked_and_eval_uses_it(tmp_path, capsys):
    # tiny on 256 images, batch 64, 2 epochs: 8 steps, so --train.guide-at 0.5 is step 4
    config = load_config(
        preset="tiny",
        overrides={"train.guide_at": "0.5", "train.epochs": "2", "train.sample_every": "0",
                   "runs_dir": str(tmp_path / "runs")},
    )  # fmt: skip
    record = RecordEMA(at=4)
    summary = train_experiment(config, progress=False, callbacks=[record])
    assert summary["steps"] == 8
    run = load_trained(summary["run_dir"])
    assert run.guide is not None
    for name, value in run.guide.model.state_dict().items():
        torch.testing.assert_close(value, record.state[name], rtol=0, atol=0)
    final = load_trained(f"{summary['run_dir']}/model.safetensors")  # the file finds it too
    assert final.guide is not None
    assert not torch.equal(next(run.model.parameters()), next(run.guide.model.parameters()))

    argv = ["eval", summary["run_dir"], "--n", "8", "--steps", "3", "--no-kid", "--json",
            "--autoguidance", "2", "--guide-interval", "500,999"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nfe"] == 3 + 2  # DDIM 3: t = 999, 666, 333; two inside the interval
    assert (tmp_path / "runs").glob(f"*/{GUIDE_DIR}/model.json").__next__().is_file()


def test_a_run_asking_for_autoguidance_without_a_guide_fails_before_training():
    with pytest.raises(ValueError, match="--train.guide-at"):
        load_config(preset="tiny", overrides={"sample.autoguidance": "2"})
    load_config(preset="tiny", overrides={"sample.autoguidance": "2", "train.guide_at": "0.25"})


def save_random_tiny(folder, seed: int, shape=(1, 8, 8)):
    config = load_config(preset="tiny")
    network = random_tiny(seed).model if shape == (1, 8, 8) else build_model(config, shape)
    save_trained(folder, network, config, shape)
    return folder


def test_guide_flag_uses_that_model_as_the_guide(tmp_path, capsys):
    main_run = save_random_tiny(tmp_path / "main", 0)
    other = save_random_tiny(tmp_path / "other", 1)
    out = tmp_path / "guided"
    argv = ["sample", str(main_run), "--n", "3", "--steps", "4", "--autoguidance", "2.5",
            "--guide", str(other), "--no-bf16", "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 8
    stored = torch.from_numpy(np.load(out.with_suffix(".npz"))["images"])

    def pixels(trained, sample):
        return to_uint8(generate_images(trained, sample, bf16=False, progress=False))

    main_model = load_trained(main_run)
    guided = SampleConfig(n=3, steps=4, autoguidance=2.5)
    expected = pixels(dataclasses.replace(main_model, guide=load_trained(other)), guided)
    assert torch.equal(stored, expected)
    assert not torch.equal(stored, pixels(main_model, SampleConfig(n=3, steps=4)))


def test_guide_flag_refuses_a_missing_or_mismatched_model(tmp_path):
    main_run = save_random_tiny(tmp_path / "main", 0)
    with pytest.raises(FileNotFoundError, match="--guide"):
        load_trained(main_run, guide=tmp_path / "nowhere")
    wrong = save_random_tiny(tmp_path / "wrong", 1, shape=(1, 16, 16))
    with pytest.raises(ValueError, match="sees images"):
        load_trained(main_run, guide=wrong)
    config = load_config(preset="tiny", overrides={"model.num_classes": "3"})
    save_trained(tmp_path / "labelled", build_model(config, (1, 8, 8)), config, (1, 8, 8))
    with pytest.raises(ValueError, match="conditional on 3 classes, the model unconditional"):
        load_trained(main_run, guide=tmp_path / "labelled")


def test_guidance_on_an_unconditional_model_warns_and_changes_nothing():
    trained = random_tiny(0)  # e.g. the headline preset trained on an unlabelled folder
    with pytest.warns(UserWarning, match="--guidance 3 has no effect: this model is unconditional"):
        guided = generate_images(trained, SampleConfig(n=2, steps=3, guidance=3.0), bf16=False, progress=False)  # fmt: skip
    plain = generate_images(trained, SampleConfig(n=2, steps=3), bf16=False, progress=False)
    assert torch.equal(guided, plain)
    assert network_evaluations(trained, SampleConfig(steps=3, guidance=3.0)) == 3
