"""The end-to-end benchmark's second peer, lucidrains' denoising-diffusion-pytorch: how it
imports without torchvision, that it runs with the library's default schedule and objective,
its arm at smoke size (a step, its own 25-step DDIM, the shipped FID), and the suite's rows."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys

import pytest
import torch

from difflab.bench.peer_lucidrains import (
    LucidrainsRecipe,
    LucidrainsTrainer,
    LucidrainsUnavailable,
    import_lucidrains,
    sample_lucidrains,
    train_lucidrains,
)
from difflab.bench.ratios import e2e_notes, e2e_ratios
from difflab.bench.suite import BenchResult
from difflab.cli.bench import format_summary

installed = pytest.mark.skipif(
    importlib.util.find_spec("denoising_diffusion_pytorch") is None,
    reason="denoising-diffusion-pytorch not installed (bash scripts/install_test_deps.sh)",
)
no_torchvision = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed here"
)
TINY = LucidrainsRecipe(dim=8, dim_mults=(1, 2))


@installed
@no_torchvision
def test_plain_import_needs_torchvision_and_the_stand_in_leaves_nothing_behind(tmp_path):
    plain = subprocess.run(
        [sys.executable, "-c", "from denoising_diffusion_pytorch import Unet, GaussianDiffusion"],
        capture_output=True, text=True, env=dict(os.environ),
    )  # fmt: skip
    assert plain.returncode != 0
    assert "ModuleNotFoundError: No module named 'torchvision'" in plain.stderr
    Unet, GaussianDiffusion, _, stand_in = import_lucidrains()
    assert (
        stand_in and Unet.__name__ == "Unet" and GaussianDiffusion.__name__ == "GaussianDiffusion"
    )
    assert not any(name.split(".")[0] == "torchvision" for name in sys.modules)
    assert importlib.util.find_spec("torchvision") is None  # diffusers' probe still sees none
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch import Dataset

    with pytest.raises(RuntimeError, match="stand-in"):  # its torchvision parts refuse to run
        Dataset(str(tmp_path), 28)


def test_a_missing_package_is_a_clear_error(monkeypatch):
    for name in (
        "denoising_diffusion_pytorch",
        "denoising_diffusion_pytorch.denoising_diffusion_pytorch",
    ):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed, even if imported
    with pytest.raises(LucidrainsUnavailable, match="install_test_deps.sh"):
        import_lucidrains()


def _sigmoid_alpha_bar(steps: int, start=-3.0, end=3.0, tau=1.0) -> torch.Tensor:
    """alpha_bar of the sigmoid schedule (Jabri et al. 2022, arXiv 2212.11972, Fig. 8),
    on the grid t = i/T, through betas clipped at 0.999 as DDPM codebases do."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    v_start = 1 / (1 + math.exp(-start / tau))
    v_end = 1 / (1 + math.exp(-end / tau))
    v = 1 / (1 + torch.exp(-(t * (end - start) + start) / tau))
    alpha_bar = (v_end - v) / (v_end - v_start)
    beta = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(0, 0.999)
    return torch.cumprod(1 - beta, 0)


@installed
def test_it_runs_the_library_defaults_pred_v_and_the_sigmoid_schedule():
    trainer = LucidrainsTrainer(TINY)
    diffusion = trainer.diffusion
    assert diffusion.objective == "pred_v" and diffusion.num_timesteps == 1000
    assert diffusion.is_ddim_sampling and diffusion.sampling_timesteps == 25
    assert diffusion.ddim_sampling_eta == 0
    torch.testing.assert_close(
        diffusion.alphas_cumprod.double(), _sigmoid_alpha_bar(1000), rtol=1e-5, atol=1e-7
    )
    group = trainer.optimizer.param_groups[0]
    assert type(trainer.optimizer) is torch.optim.Adam
    assert (group["lr"], group["betas"]) == (1e-4, (0.9, 0.99))


@installed
@pytest.mark.filterwarnings("ignore:n=5 <= feature dimension")  # a plumbing check, not a score
def test_the_arm_trains_samples_25_ddim_steps_and_scores_at_smoke_size():
    from difflab.metrics.shipped import load_shipped_evaluator

    trained = train_lucidrains(TINY, 1e-6, limit=64, progress=False)  # the first batch ends it
    assert trained["steps"] == 1 and trained["stopped_by_budget"]
    assert trained["train_images_per_s"] > 0 and trained["params"] > 0
    calls = []
    unet = trained["model"].model  # the EMA copy's Unet
    handle = unet.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        images = sample_lucidrains(trained["model"], n=5, batch_size=3)
        again = sample_lucidrains(trained["model"], n=5, batch_size=3)
    finally:
        handle.remove()
    assert calls == [3] * 25 + [2] * 25 + [3] * 25 + [2] * 25  # 25 DDIM steps per batch
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images, again)  # seeded
    assert images.float().std() > 0
    report = load_shipped_evaluator(with_real_images=False).evaluate(images, progress=False)
    assert report["n"] == 5 and math.isfinite(report["fid"]) and report["fid"] > 0


def _side(fid: float, train: float, sample: float, model: str) -> dict:
    return {"fid": fid, "train_images_per_s": train, "sample_images_per_s": sample, "model": model}


def test_e2e_rows_per_peer_and_a_note_for_a_skipped_one():
    data = {
        "minutes": 1.0, "n": 64, "difflab": _side(2.0, 90.0, 12.0, "difflab") | {"fid_floor": 0.3},
        "peer": _side(5.0, 18.0, 3.0, "diffusers UNet2DModel w=40"),
        "lucidrains": _side(7.0, 9.0, 2.0, "lucidrains Unet dim=48 mults=(1, 2, 4)"),
    }  # fmt: skip
    rows = e2e_ratios(data)
    assert len(rows) == 6 and e2e_notes(data) == []
    fid = [r for r in rows if r.unit == "FID"]
    assert [r.peer for r in fid] == [5.0, 7.0]
    assert fid[1].ratio == pytest.approx(3.5) and "lucidrains" in fid[1].peer_name
    data["lucidrains"] = {"model": "lucidrains Unet", "skipped": "not installed: no module"}
    assert len(e2e_ratios(data)) == 3
    result = BenchResult("e2e", [], ratios=e2e_ratios(data), notes=e2e_notes(data))
    table = format_summary([result])
    assert "NOTE e2e: lucidrains denoising-diffusion-pytorch: skipped, not installed" in table
    assert "FAILED" not in table
