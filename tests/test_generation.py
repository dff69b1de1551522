"""generate_images: noise on the model's device, the config passed whole, padding cropped."""

import pytest
import torch

import difflab.samplers.seeding as seeding
from difflab.config import SampleConfig, load_config
from difflab.experiment import build_model
from difflab.generation import generate_images, sampling_plan
from difflab.io.trained import TrainedModel, trained_model


@pytest.fixture
def tiny():
    config = load_config(preset="tiny")
    torch.manual_seed(0)
    return trained_model(build_model(config, (1, 8, 8)), config, (1, 8, 8))


def test_the_noise_is_drawn_on_the_models_device(tiny, monkeypatch):
    # The model claims to live on another device than the CPU that noise once defaulted to; the
    # generators record where they were asked for, and are made on the CPU so the test can run.
    asked: list[torch.device] = []
    real = seeding.image_generators

    def recording(seeds, *, device):
        asked.append(torch.device(device))
        return real(seeds, device="cpu")

    monkeypatch.setattr(seeding, "image_generators", recording)
    monkeypatch.setattr(TrainedModel, "device", property(lambda self: torch.device("meta")))
    generate_images(tiny, SampleConfig(steps=2, n=3, batch_size=2), bf16=False, progress=False)
    assert asked == [torch.device("meta")] * 2  # one call per batch, both on the model's device


def test_image_k_comes_from_seed_k_and_the_config_is_read_whole(tiny):
    sample = SampleConfig(sampler="ddim", steps=3, eta=1.0, n=4, seed=5, batch_size=4)
    batch = generate_images(tiny, sample, bf16=False, progress=False)
    one = generate_images(tiny, sample, seeds=[7], bf16=False, progress=False)
    torch.testing.assert_close(one[0], batch[2])  # seed 7 = image k = 2 of seeds 5..8
    eta0 = generate_images(
        tiny, SampleConfig(sampler="ddim", steps=3, eta=0.0, n=4, seed=5), bf16=False,
        progress=False,
    )  # fmt: skip
    assert not torch.allclose(eta0, batch)  # eta travels from the config to the sampler
    assert sampling_plan(tiny, sample).options == {"eta": 1.0}


def test_training_padding_is_cropped(tmp_path):
    config = load_config(preset="tiny", overrides={"data.pad": 2})
    padded = trained_model(build_model(config, (1, 12, 12)), config, (1, 12, 12))
    images = generate_images(padded, SampleConfig(steps=2, n=2), bf16=False, progress=False)
    assert images.shape == (2, 1, 8, 8)


@pytest.mark.parametrize(("native", "bf16", "expected"), [
    (False, None, False), (True, None, True), (False, True, True), (True, False, False),
])  # fmt: skip
def test_the_network_runs_in_bf16_only_where_native_unless_told(tiny, monkeypatch, native, bf16,
                                                                 expected):  # fmt: skip
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    seen: list[bool] = []
    tiny.model.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    generate_images(tiny, SampleConfig(steps=2, n=2), bf16=bf16, progress=False)
    assert seen and all(enabled is expected for enabled in seen)
