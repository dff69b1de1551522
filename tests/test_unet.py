"""The difflab UNet: shapes, zero initialisation, time conditioning, config round trip,
attention against a naive computation, a tiny training run, and the diffusers adapter."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from difflab.models import UNET_PRESETS, UNet, build_unet
from difflab.models.blocks import SelfAttention
from difflab.models.embedding import timestep_embedding


def tiny(in_channels=1, **overrides):
    torch.manual_seed(0)
    return build_unet("tiny", in_channels=in_channels, **overrides)


def randomise_(model):
    """Give every parameter (zero-initialised ones too) random values, so outputs are non-trivial."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 8, 7])
def test_output_shape_matches_input(channels, size):
    model = tiny(channels)
    x = torch.randn(2, channels, size, size)
    assert model(x, torch.tensor([0, 999])).shape == x.shape


def test_initial_output_is_exactly_zero():
    out = tiny()(torch.randn(3, 1, 28, 28), torch.tensor([1, 50, 900]))
    assert torch.equal(out, torch.zeros_like(out))


def test_int_float_and_scalar_timesteps_agree():
    model = randomise_(tiny()).eval()
    x = torch.randn(2, 1, 8, 8)
    ref = model(x, torch.tensor([7, 7]))
    torch.testing.assert_close(model(x, torch.tensor([7.0, 7.0])), ref)
    torch.testing.assert_close(model(x, 7), ref)


def test_time_conditioning_changes_output_after_training_steps():
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, target = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    for _ in range(3):  # zero-init output conv: step 1 moves it, step 2 reaches the blocks
        loss = F.mse_loss(model(x, torch.randint(0, 1000, (4,))), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        early, late = model(x, torch.full((4,), 10)), model(x, torch.full((4,), 900))
    assert (early - late).abs().max() > 1e-4


def test_config_round_trip_reproduces_outputs():
    model = randomise_(tiny(3, dropout=0.1)).eval()
    config = json.loads(json.dumps(model.config()))  # what model.json holds
    rebuilt = UNet.from_config(config)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    assert rebuilt.config() == model.config()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 600])
    assert torch.equal(rebuilt(x, t), model(x, t))


def test_config_errors_are_clear():
    config = tiny().config()
    with pytest.raises(ValueError, match="unknown UNet config keys"):
        UNet.from_config({**config, "chanels": [8]})
    with pytest.raises(ValueError, match="kind"):
        UNet.from_config({**config, "kind": "diffusers.UNet2DModel"})
    with pytest.raises(ValueError, match="one entry per level"):
        UNet(in_channels=1, channels=(8, 16), blocks=(1,))
    with pytest.raises(ValueError, match="unknown UNet preset"):
        build_unet("huge", in_channels=1)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        tiny()(torch.randn(2, 3, 8, 8), torch.tensor([1, 2]))


def test_attention_matches_naive_softmax_attention():
    torch.manual_seed(0)
    attn = randomise_(SelfAttention(16, head_dim=8, groups=4))
    x = torch.randn(2, 16, 5, 3)
    b, c, n, heads, d = 2, 16, 15, 2, 8
    # softmax(Q K^T / sqrt(d)) V per head (Vaswani et al. 2017 eq. 1), written out by hand
    qkv = attn.qkv(attn.norm(x)).reshape(b, 3 * c, n)
    q, k, v = (qkv[:, i * c : (i + 1) * c].reshape(b, heads, d, n) for i in range(3))
    weights = torch.softmax(torch.einsum("bhdi,bhdj->bhij", q, k) / math.sqrt(d), dim=-1)
    out = torch.einsum("bhij,bhdj->bhdi", weights, v).reshape(b, c, 5, 3)
    torch.testing.assert_close(attn(x), x + attn.proj(out), atol=1e-5, rtol=1e-5)


def test_channels_last_input_gives_the_same_output():
    model = randomise_(tiny()).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    cl_model = randomise_(tiny()).to(memory_format=torch.channels_last).eval()
    out = cl_model(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, model(x, t), atol=1e-5, rtol=1e-5)


def test_channels_last_activations_match_nchw_outputs_and_gradients():
    # UNet.channels_last only changes the memory layout inside the network: the output (NCHW)
    # and every parameter gradient must match the NCHW computation.
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 500])
    results = []
    for channels_last in (False, True):
        model = randomise_(tiny(attention_levels=(0, 1)))
        model.channels_last = channels_last
        out = model(x, t)
        out.square().sum().backward()
        assert out.is_contiguous()
        results.append((out, [p.grad for p in model.parameters()]))
    (out_nchw, grads_nchw), (out_cl, grads_cl) = results
    torch.testing.assert_close(out_cl, out_nchw, atol=1e-5, rtol=1e-5)
    for g_cl, g_nchw in zip(grads_cl, grads_nchw, strict=True):
        torch.testing.assert_close(g_cl, g_nchw, atol=1e-4, rtol=1e-4)


def test_group_norm_on_channels_last_input_equals_nn_group_norm():
    from difflab.models.blocks import group_norm

    norm, reference = group_norm(12, 4), torch.nn.GroupNorm(4, 12)
    randomise_(norm), randomise_(reference)
    x = torch.randn(2, 12, 5, 3)
    out = norm(x.contiguous(memory_format=torch.channels_last))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, reference(x), atol=1e-5, rtol=1e-5)


def test_tiny_preset_learns_a_fixed_batch():
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(8, 1, 8, 8, generator=gen), torch.randint(0, 1000, (8,), generator=gen)
    eps = torch.randn(8, 1, 8, 8, generator=gen)
    losses = []
    for _ in range(40):
        loss = F.mse_loss(model(x, t), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_presets_build_with_their_documented_scale():
    params = {
        name: sum(
            p.numel()
            for p in build_unet(name, in_channels=3 if name == "cifar10" else 1).parameters()
        )
        for name in UNET_PRESETS
    }
    assert params["tiny"] < 100_000
    assert params["fmnist-cpu"] < params["fmnist"]
    assert 12e6 < params["fmnist"] < 18e6
    assert params["cifar10"] > params["fmnist"]
    assert UNET_PRESETS["cifar10"]["attention_levels"] == (1, 2)  # 16x16 and 8x8 of 32x32


def test_timestep_embedding_matches_diffusers():
    embeddings = pytest.importorskip("diffusers.models.embeddings", reason="diffusers (dev extra)")
    t = torch.tensor([0, 1, 17, 999])
    ref = embeddings.get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding(t, 32), ref)


def test_diffusers_adapter_returns_sample_tensor_and_round_trips():
    pytest.importorskip("diffusers", reason="the adapter needs diffusers (dev extra)")
    from difflab.models.diffusers_adapter import DiffusersUNet, build_diffusers_unet

    torch.manual_seed(0)
    model = build_diffusers_unet(width=8).eval()
    x = torch.randn(2, 1, 28, 28)
    out = model(x, torch.tensor([5, 500]))
    assert isinstance(out, torch.Tensor) and out.shape == x.shape
    torch.testing.assert_close(model(x, 5), model(x, torch.tensor([5.0, 5.0])))
    rebuilt = DiffusersUNet.from_config(json.loads(json.dumps(model.config())))
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.eval()(x, torch.tensor([5, 500])), out)
