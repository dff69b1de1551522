"""--train.mixed-precision auto: bf16 only where the hardware computes it natively."""

import dataclasses

import pytest
import torch

from difflab import precision
from difflab.config import load_config
from difflab.precision import cpu_has_native_bf16, resolve_precision


def _cpu_probes(monkeypatch, *, amx: bool, avx512_bf16: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(False, False, "no"), (True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16")],
)
def test_auto_on_cpu_follows_native_bf16(monkeypatch, amx, avx512_bf16, expected):
    _cpu_probes(monkeypatch, amx=amx, avx512_bf16=avx512_bf16)
    assert resolve_precision("auto", "cpu") == expected


def test_auto_without_the_private_probes_is_fp32(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert not cpu_has_native_bf16()
    assert resolve_precision("auto", "cpu") == "no"


def test_a_probe_that_fails_counts_as_no(monkeypatch):
    def broken():
        raise RuntimeError("cpuinfo unavailable")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert resolve_precision("auto", "cpu") == "no"


def test_auto_on_cuda_follows_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", "cuda:0") == "no"


@pytest.mark.parametrize("explicit", ["no", "bf16", "fp16"])
def test_an_explicit_choice_is_kept(monkeypatch, explicit):
    _cpu_probes(monkeypatch, amx=False, avx512_bf16=False)
    assert resolve_precision(explicit, "cpu") == explicit


def test_the_default_is_auto_and_the_run_records_the_resolved_mode(monkeypatch):
    from difflab.experiment.build import with_precision

    config = load_config(preset="tiny")
    assert config.train.mixed_precision == "auto"
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    _cpu_probes(monkeypatch, amx=False, avx512_bf16=False)
    assert with_precision(config).train.mixed_precision == "no"
    _cpu_probes(monkeypatch, amx=True, avx512_bf16=False)
    assert with_precision(config).train.mixed_precision == "bf16"
    fixed = dataclasses.replace(
        config, train=dataclasses.replace(config.train, mixed_precision="no")
    )
    assert with_precision(fixed).train.mixed_precision == "no"


def test_an_unknown_mode_is_refused_naming_the_flag():
    with pytest.raises(ValueError, match="--train.mixed-precision"):
        load_config(overrides={"train.mixed_precision": "fp8"})
