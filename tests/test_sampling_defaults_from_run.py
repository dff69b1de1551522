"""`difflab sample|eval RUN` sample as the run did unless a flag says otherwise.

Before, a flag left out took SampleConfig's default, so `difflab eval` of the headline run
(guidance 3 on 9 of 16 DDIM steps, 25 network evaluations) silently sampled at 25 steps with
guidance on every one: 50 evaluations and a different FID than the run reported.
"""

import json
import logging

import numpy as np

from difflab.cli.main import build_parser, main
from difflab.cli.sampling_flags import recorded_sampling, sample_config
from difflab.config import SampleConfig, load_config
from difflab.experiment import build_model
from difflab.io.trained import save_trained

RECORDED = {"sample.steps": "3", "sample.eta": "0", "sample.seed": "7", "sample.n": "5"}


def saved_model(folder, overrides):
    config = load_config(preset="tiny", overrides=overrides)
    save_trained(folder, build_model(config, (1, 8, 8)), config, (1, 8, 8))
    return folder


def sample(model_dir, out, *flags):
    return main(["sample", str(model_dir), "--n", "2", "--no-bf16", "--json",
                 "--out", str(out), *flags])  # fmt: skip


def test_sample_takes_the_runs_steps_eta_and_seed_and_a_flag_overrides(
    tmp_path, model_calls, capsys
):
    model = saved_model(tmp_path / "run", RECORDED)
    assert sample(model, tmp_path / "inherited") == 0
    summary = json.loads(capsys.readouterr().out)
    # DDIM's trailing spacing (diffusers' "trailing"), 3 steps over T = 1000:
    # t = round(T - k T / 3) - 1 for k = 0, 1, 2
    assert model_calls == [999, 666, 332]
    assert (summary["steps"], summary["nfe"], summary["eta"], summary["n"]) == (3, 3, 0.0, 2)
    model_calls.clear()
    # the same settings given as flags: the same pixels, so the run's seed 7 was used too
    assert sample(model, tmp_path / "explicit", "--steps", "3", "--eta", "0", "--seed", "7") == 0
    capsys.readouterr()
    inherited = np.load(tmp_path / "inherited.npz")["images"]
    np.testing.assert_array_equal(inherited, np.load(tmp_path / "explicit.npz")["images"])
    model_calls.clear()
    assert sample(model, tmp_path / "override", "--steps", "5", "--seed", "0") == 0
    assert len(model_calls) == 5
    assert not np.array_equal(inherited, np.load(tmp_path / "override.npz")["images"])


def test_a_run_with_default_settings_samples_at_the_flag_defaults(tmp_path, model_calls, capsys):
    model = saved_model(tmp_path / "run", {})
    assert sample(model, tmp_path / "out") == 0
    assert json.loads(capsys.readouterr().out)["steps"] == SampleConfig().steps == len(model_calls)


def test_the_number_of_images_stays_each_commands_own():
    recorded = SampleConfig(n=64, steps=3, guidance=3.0, guide_interval="0,600")
    args = build_parser().parse_args(["eval", "RUN"])
    got = sample_config(args, recorded)
    assert (got.n, got.steps, got.guidance, got.guide_interval) == (2048, 3, 3.0, "0,600")
    args = build_parser().parse_args(["eval", "RUN", "--guidance", "2", "--n", "100"])
    got = sample_config(args, recorded)
    assert (got.n, got.steps, got.guidance) == (100, 3, 2.0)
    assert sample_config(build_parser().parse_args(["eval", "RUN"])) == SampleConfig(n=2048)


def test_the_log_says_which_settings_came_from_the_run(caplog):
    args = build_parser().parse_args(["sample", "RUN", "--eta", "0.5"])
    with caplog.at_level(logging.INFO, logger="difflab"):
        sample_config(args, SampleConfig(steps=16, eta=0.0))
    assert "sampling as the run did: --steps 16 (a flag overrides)" in caplog.text


def test_an_unreadable_recorded_section_falls_back_to_the_defaults(caplog):
    assert recorded_sampling({"sample": {"sampler": "no-such-sampler"}}) is None
    assert "do not read" in caplog.text
    assert recorded_sampling({}) is None and recorded_sampling(None) is None
    assert recorded_sampling({"sample": {"steps": 9}}) == SampleConfig(steps=9)
