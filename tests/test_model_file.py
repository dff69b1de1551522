"""Model files (difflab.io.trained): round trips for difflab's UNet and diffusers', and one-line
errors for every way a model.json or its weights can be wrong."""

import json

import pytest
import torch

from difflab.cli.sampling_flags import warn_if_steps_ignored
from difflab.config import SampleConfig, load_config
from difflab.experiment import build_model
from difflab.io.trained import load_trained, save_trained


@pytest.mark.parametrize("preset", ["tiny", "diffusers"])
def test_saved_model_reloads_with_identical_outputs(preset, tmp_path):
    pytest.importorskip("diffusers", reason="diffusers is a test dependency (pip install .[dev])")
    config = load_config(overrides={"model.preset": preset, "diffusion.objective": "v"})
    torch.manual_seed(0)
    model = build_model(config, (1, 28, 28))
    for p in model.parameters():  # zero-initialised outputs would make the check vacuous
        torch.nn.init.normal_(p, std=0.02)
    save_trained(tmp_path, model, config, (1, 28, 28))
    trained = load_trained(tmp_path)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([5, 700])
    with torch.no_grad():
        expected, got = model.eval()(x, t), trained.model(x, t)
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert trained.objective == "v" and trained.image_shape == (1, 28, 28)
    assert (trained.low, trained.high, trained.pad) == (-0.5, 0.5, 0)


@pytest.fixture
def saved(tmp_path):
    config = load_config(preset="tiny")
    save_trained(tmp_path, build_model(config, (1, 8, 8)), config, (1, 8, 8))
    return tmp_path


def test_tampered_weights_are_refused(saved):
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_trained(saved)


def edit_meta(folder, change):
    meta = json.loads((folder / "model.json").read_text())
    change(meta)
    (folder / "model.json").write_text(json.dumps(meta))


def test_truncated_weights_without_a_recorded_hash_are_named(saved):
    edit_meta(saved, lambda meta: meta.pop("weights_sha256"))
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        load_trained(saved)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m.pop("unet"), "field 'unet' is missing"),
        (lambda m: m.pop("run_config"), "field 'run_config' is missing"),
        (lambda m: m.update(image_shape=[1, 8]), r"field 'image_shape' must be \[C, H, W\]"),
        (lambda m: m.update(format="other/2"), "format is 'other/2'"),
        (lambda m: m["unet"].update(kind="mystery"), "'unet' does not describe a network"),
        (lambda m: m["run_config"].update(colour="red"), "run_config is not a valid run config"),
        (lambda m: m["unet"].update(channels=[64, 64]), "weights in model.safetensors do not fit"),
    ],
)
def test_a_bad_model_json_gets_one_line_naming_the_field(saved, change, match):
    edit_meta(saved, change)
    with pytest.raises(ValueError, match=match) as err:
        load_trained(saved)
    assert "model.json" in str(err.value) and "\n" not in str(err.value)


def test_weights_of_another_dtype_are_refused_not_cast(saved):
    """float16 weights with a matching recorded hash: load_state_dict would round them into
    the float32 network without a word."""
    from safetensors.torch import load_file, save_file

    from difflab.files import sha256_file

    weights = saved / "model.safetensors"
    save_file({k: v.half() for k, v in load_file(str(weights)).items()}, str(weights))
    edit_meta(saved, lambda meta: meta.update(weights_sha256=sha256_file(weights)))
    with pytest.raises(
        ValueError, match=r"model\.safetensors: tensor '.*' is float16, the network holds float32"
    ):
        load_trained(saved)


@pytest.mark.parametrize("name", ["model.safetensors", "model.json"])
def test_a_model_file_linked_from_outside_is_not_followed(saved, tmp_path_factory, name):
    outside = tmp_path_factory.mktemp("outside") / name
    (saved / name).rename(outside)  # the same bytes, in another folder
    (saved / name).symlink_to(outside)
    with pytest.raises(ValueError, match=f"{name}: a link out of its folder .* not followed"):
        load_trained(saved)


def test_a_cut_model_json_says_what_to_do(saved):
    meta = saved / "model.json"
    meta.write_text(meta.read_text()[:100])
    with pytest.raises(ValueError, match=r"model\.json: not valid JSON .*restore it or re-export"):
        load_trained(saved)


def test_a_sampler_that_ignores_steps_says_so_only_when_steps_was_changed(caplog):
    warn_if_steps_ignored(SampleConfig(sampler="ddpm_skip", skip="growing"))
    assert "ignores" not in caplog.text  # steps left at its default: nothing to report
    warn_if_steps_ignored(SampleConfig(sampler="ddpm_skip", steps=50))
    assert "ddpm_skip ignores --steps 50; it reads --skip" in caplog.text
    warn_if_steps_ignored(SampleConfig(sampler="ddim", steps=50))
    assert "ddim ignores" not in caplog.text
