"""Config dataclasses: defaults, presets, TOML files, dotted overrides and validation messages."""

import dataclasses

import pytest

from difflab.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
)


def test_defaults_are_the_measured_cpu_recipe():
    config = RunConfig()
    assert (config.data.low, config.data.high) == (-0.5, 0.5)
    assert config.diffusion.beta_max == 0.01
    assert config.diffusion.objective == "v" and config.diffusion.min_snr_gamma == 5.0
    assert (config.sample.sampler, config.sample.steps, config.sample.eta) == ("ddim", 25, 1.0)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().train.lr = 1.0  # type: ignore[misc]


def test_dict_round_trip_is_identity():
    config = load_config(preset="cifar10")
    assert config_from_dict(config_to_dict(config)) == config


def test_overrides_are_typed_and_accept_kebab_case():
    config = apply_overrides(
        RunConfig(),
        {
            "train.lr": "3e-4",
            "train.batch-size": "32",
            "train.compile": "true",
            "data.limit": "none",
        },
    )
    assert config.train.lr == pytest.approx(3e-4)
    assert config.train.batch_size == 32 and isinstance(config.train.batch_size, int)
    assert config.train.compile is True
    assert config.data.limit is None


def test_precedence_preset_then_file_then_flags(tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text('[train]\nepochs = 7\nlr = 1e-3\n[diffusion]\nschedule = "cosine"\n')
    config = load_config(toml, preset="quick", overrides={"train.lr": "2e-3"})
    assert config.train.minutes == PRESETS["quick"]["train.minutes"]  # from the preset
    assert config.train.warmup == PRESETS["quick"]["train.warmup"]
    assert config.train.epochs == 7  # the file beats the preset
    assert config.diffusion.schedule == "cosine"
    assert config.train.lr == pytest.approx(2e-3)  # the flag beats both


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"diffusion.schedule": "quadratic"}, "--diffusion.schedule"),
        ({"train.batch_size": "0"}, "--train.batch-size"),
        ({"data.high": "-1"}, "--data.high"),
        ({"sample.sampler": "plms"}, "--sample.sampler"),
        ({"train.epochs": "two"}, "--train.epochs"),
        ({"train.nope": "1"}, "--train.nope"),
    ],
)
def test_errors_name_the_flag(overrides, flag):
    with pytest.raises(ConfigError, match=flag.replace(".", r"\.")):
        apply_overrides(RunConfig(), overrides)


def test_unknown_toml_key_is_reported(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("[train]\nlearning_rate = 1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(toml)


def test_a_toml_file_that_is_no_utf8_is_named(tmp_path):
    toml = tmp_path / "flipped.toml"
    toml.write_bytes(b"[train]\nepochs = 2\n# caf\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(ConfigError, match=r"flipped\.toml is not UTF-8 text \(byte 24\)"):
        load_config(toml)


def test_every_preset_resolves():
    for name in PRESETS:
        assert isinstance(load_config(preset=name), RunConfig)


# Every value here used to pass validation and fail late (or never), after the run folder was
# made; `train --dry-run` must now refuse it with exit code 2 and a message naming the flag.
@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--train.checkpoint-every", "-1"),
        ("--train.sample-every", "-1"),
        ("--train.eval-every", "-2"),
        ("--train.eval-n", "1"),
        ("--train.seed", "-1"),
        ("--train.weight-decay", "-0.1"),
        ("--train.lr", "inf"),
        ("--train.minutes", "nan"),
        ("--eval.batch-size", "0"),
        ("--eval.kid-subsets", "0"),
        ("--sample.seed", "-3"),
        ("--sample.skip", "every_other"),
        ("--sample.eta", "nan"),
        ("--data.dataset", " "),
        ("--data.low", "-inf"),
        ("--notify.when", "fid=20"),
        ("--notify.when", "fid<1.2.3"),
        ("--runs-dir", ""),
    ],
)
def test_dry_run_refuses_bad_values_naming_the_flag(flag, value, capsys):
    from difflab.cli.main import main

    assert main(["train", f"{flag}={value}", "--dry-run"]) == 2  # `=`: "-inf" is not a flag
    captured = capsys.readouterr()
    assert flag in captured.err and captured.out == ""  # nothing resolved, nothing printed


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--train.checkpoint-every", "0"),
        ("--train.eval-n", "2"),
        ("--eval.kid-subsets", "1"),
        ("--sample.skip", "growing"),
        ("--notify.when", "fid<20, train/loss>1.5e0,x>inf"),
    ],
)
def test_dry_run_accepts_the_boundary_values(flag, value, capsys):
    from difflab.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", flag, value, "--dry-run"])
    assert exit_info.value.code == 0
    assert '"train"' in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["fid<20", "a>-1e3", "x>inf", "fid=20", "fid<", "<3", "f<1.2.3"])
def test_notify_when_is_checked_with_the_callbacks_own_grammar(spec):
    # the config may not import training, so it repeats the grammar: the two must agree
    from difflab.config import NotifyConfig
    from difflab.training.callbacks.notify import parse_threshold

    try:
        parse_threshold(spec)
        parses = True
    except ValueError:
        parses = False
    try:
        NotifyConfig(when=spec)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == parses


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[data]\nlimit = true\n", "data.limit"),  # was silently 1
        ("[train]\nlr = true\n", "train.lr"),
        ("[notify]\non_end = 1\n", "notify.on_end"),  # an int is no bool either
        ("[train]\ncompile = 0\n", "train.compile"),
    ],
)
def test_toml_bools_and_numbers_do_not_coerce(tmp_path, toml, key):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        load_config(path)
    assert str(path) in str(info.value) and len(str(info.value).splitlines()) == 1


def test_command_line_strings_still_parse_as_bools_and_ints():
    config = load_config(overrides={"train.compile": "1", "data.limit": "12"})
    assert config.train.compile is True and config.data.limit == 12
