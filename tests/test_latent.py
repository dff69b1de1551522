"""Latent diffusion (#20): the KL autoencoder's shapes, KL and scale factor against independent
computations; a tiny autoencoder -> `difflab train --latent` -> sample -> eval end to end on
Fashion-MNIST slivers; exact resume of both runs; a latent model without its autoencoder."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import difflab.training
from difflab.cli.main import main
from difflab.config import SampleConfig
from difflab.generation import generate_images
from difflab.io.autoencoder import load_autoencoder
from difflab.io.trained import load_trained
from difflab.models.autoencoder import Autoencoder, AutoencoderArch, kl_divergence
from difflab.training import Callback

AE_ARGS = ["autoencoder", "train", "--dataset", "fashion_mnist", "--limit", "256", "--epochs",
           "2", "--width", "8", "--batch-size", "32", "--recon-n", "64", "--no-progress"]  # fmt: skip
# small n on purpose (speed): the n <= feature-dimension warning is expected here
pytestmark = pytest.mark.filterwarnings("ignore:n=.*feature dimension:UserWarning")
TRAIN_ARGS = ["--preset", "tiny", "--data.limit", "128", "--train.batch-size", "32",
              "--train.epochs", "2", "--train.mixed-precision", "no", "--train.sample-every", "0",
              "--train.checkpoint-every", "0", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core machine two threads collapse under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    """(autoencoder folder, its card, latent run folder), trained once for the module."""
    root = tmp_path_factory.mktemp("latent")
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFLAB_CACHE", str(root / "cache"))
    try:
        runs = root / "runs"
        assert main([*AE_ARGS, "--runs-dir", str(runs), "--out", str(root / "ae")]) == 0
        card = json.loads((root / "ae" / "model.json").read_text())
        train = ["train", "--latent", str(root / "ae"), "--runs-dir", str(runs), *TRAIN_ARGS]
        assert main(train) == 0
        yield root / "ae", card, next(runs.glob("*-tiny"))
    finally:
        mp.undo()


# --- the autoencoder network --------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "factor", "latent"),
    [((1, 28, 28), 4, (3, 7, 7)), ((1, 28, 28), 2, (3, 14, 14)), ((3, 15, 13), 2, (3, 8, 7)),
     ((1, 30, 30), 4, (3, 8, 8)), ((2, 9, 9), 1, (3, 9, 9))],
)  # fmt: skip
def test_encode_decode_shapes_pad_to_a_multiple_and_crop_back(shape, factor, latent):
    model = Autoencoder(AutoencoderArch(shape, factor, latent_channels=3, width=8)).eval()
    x = torch.rand(2, *shape) - 0.5
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, *latent) == (2, *model.arch.latent_shape)
    assert model.decode(mu).shape == (2, *shape)
    with pytest.raises(ValueError, match="encodes"):
        model.encode(torch.zeros(1, shape[0], shape[1] + 1, shape[2]))


def test_kl_term_is_the_closed_form_of_torch_distributions():
    mu, logvar = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)
    assert float(kl_divergence(torch.zeros(1, 4), torch.zeros(1, 4))) == 0.0


# --- the trained autoencoder and its card ---------------------------------------------------


def test_scale_factor_is_one_over_the_std_of_the_training_latents(latent_run):
    from difflab.data import load_images

    folder, card, _ = latent_run
    images = load_images("fashion_mnist", "train").images[:256]
    codec = load_autoencoder(folder)
    x = torch.as_tensor(images).float() / 255.0 - 0.5  # the card's [low, high] = [-0.5, 0.5]
    with torch.no_grad():
        means = codec.model.encode(x)[0].numpy().astype(np.float64)
    assert card["scale_factor"] == pytest.approx(1.0 / np.std(means, ddof=1), rel=1e-5)
    assert card["latent_shape"] == [4, 7, 7] and card["image_shape"] == [1, 28, 28]
    assert float(codec.encode(x).std()) == pytest.approx(1.0, rel=1e-4)  # scaled: unit std
    # the reconstruction is measured: MSE of a 2-epoch autoencoder, FID above its floor
    assert 0 < card["recon_mse"] < 0.1 and card["recon_fid"] > card["recon_fid_floor"] > 0
    # ...and tracked like any run: the run store holds the measurements
    rows = [json.loads(line) for line in (Path(card["run_dir"]) / "metrics.jsonl").open()]
    tracked = {r["name"]: r["value"] for r in rows}
    assert (
        tracked["recon/fid"] == card["recon_fid"]
        and tracked["scale_factor"] == card["scale_factor"]
    )


# --- latent diffusion end to end ------------------------------------------------------------


def test_a_latent_model_samples_decoded_images_and_evaluates(latent_run, tmp_path, capsys):
    folder, card, run = latent_run
    meta = json.loads((run / "model.json").read_text())
    assert meta["image_shape"] == [4, 7, 7]  # the UNet sees latents
    ae = meta["autoencoder"]
    assert ae["path"] == os.path.abspath(folder) and ae["weights_sha256"] == card["weights_sha256"]
    trained = load_trained(run)
    sample = SampleConfig(n=6, steps=3)
    images = generate_images(trained, sample, progress=False)
    # decoded once, at the end: the same as sampling latents and decoding them by hand
    latents = generate_images(dataclasses.replace(trained, codec=None), sample, progress=False)
    assert latents.shape == (6, 4, 7, 7) and images.shape == (6, 1, 28, 28)
    torch.testing.assert_close(images, trained.codec.decode(latents))
    capsys.readouterr()
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "8", "--steps", "3", "--out", str(out)]) == 0
    assert np.load(out.with_suffix(".npz"))["images"].shape[1:] == (1, 28, 28)
    assert main(["eval", str(run), "--n", "32", "--steps", "3", "--no-kid", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["feature_model"] == "fmnist_classifier" and result["fid"] > 0


def test_a_latent_model_without_its_autoencoder_is_refused_naming_it(latent_run, tmp_path, capsys):
    folder, _, run = latent_run
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    try:
        assert main(["sample", str(run), "--n", "2", "--steps", "2"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"needs its autoencoder {os.path.abspath(folder)}, which is missing" in err
        assert "Traceback" not in err and len(err.splitlines()) == 1
    finally:
        moved.rename(folder)
    files = {name: (folder / name).read_bytes() for name in ("model.safetensors", "model.json")}
    try:  # another autoencoder in its place (same format, other weights): refused
        from difflab.io.autoencoder import save_autoencoder

        card = json.loads(files["model.json"])
        other = Autoencoder(load_autoencoder(folder).model.arch)
        save_autoencoder(folder, other, {k: v for k, v in card.items() if k != "weights_sha256"})
        assert main(["eval", str(run), "--n", "4", "--steps", "2"]) == 2
        assert "has changed since training" in capsys.readouterr().err
    finally:
        for name, data in files.items():
            (folder / name).write_bytes(data)


# --- exact resume -----------------------------------------------------------------------------


class SigtermAtStep(Callback):
    """Sends this process SIGTERM after training step `step`: the run checkpoints and stops."""

    order = 50

    def __init__(self, step: int):
        self.step = step

    def after_batch(self, learn):
        if learn.training and learn.step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _interrupted(argv: list[str], step: int) -> None:
    real = difflab.training.standard_callbacks
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            difflab.training, "standard_callbacks", lambda **kw: [*real(**kw), SigtermAtStep(step)]
        )
        assert main(argv) == 0


def test_latent_and_autoencoder_runs_resume_bit_identically(latent_run, tmp_path, monkeypatch):
    folder, _, straight = latent_run
    monkeypatch.setenv("DIFFLAB_CACHE", str(folder.parent / "cache"))
    runs = tmp_path / "runs"
    # the latent diffusion run: stopped mid-epoch 1 (step 3 of 8), resumed
    _interrupted(["train", "--latent", str(folder), "--runs-dir", str(runs),
                               *TRAIN_ARGS], step=3)  # fmt: skip
    [run] = runs.glob("*-tiny")
    assert not (run / "model.safetensors").exists()
    assert main(["train", "--resume", str(run)]) == 0
    weights = "model.safetensors"
    assert (run / weights).read_bytes() == (straight / weights).read_bytes()
    # the autoencoder run: stopped at step 5 of 16, resumed
    _interrupted([*AE_ARGS, "--runs-dir", str(runs)], step=5)
    [ae_run] = runs.glob("*-autoencoder")
    assert not (ae_run / "autoencoder").exists()
    assert main(["autoencoder", "train", "--resume", str(ae_run), "--no-progress"]) == 0
    assert (ae_run / "autoencoder" / weights).read_bytes() == (folder / weights).read_bytes()
