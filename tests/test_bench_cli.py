"""`difflab bench`: help, usage errors, a real smoke run whose ratios come from its figures,
and the budget/peer pieces of the end-to-end benchmark against independent references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from difflab.bench.peer import PeerLRSchedule
from difflab.bench.ratios import unet_ratios
from difflab.bench.suite import BENCHMARKS, SIZES, benchmarks_dir, parse_json_output, select
from difflab.cli.main import main
from difflab.training import find_callback
from difflab.training.callback import Callback
from difflab.training.callbacks.budget import WallClockBudget, with_budget


def test_help_lists_every_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--quick", "--only", "--json", "--out"):
        assert flag in out
    for name in BENCHMARKS:
        assert f"\n  {name} " in out


def test_unknown_benchmark_is_a_usage_error(capsys):
    assert main(["bench", "--only", "fid,nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "fid" in err


def test_every_benchmark_has_every_size_and_its_script():
    folder = benchmarks_dir()
    for bench in BENCHMARKS.values():
        assert set(bench.args) == set(SIZES), bench.name
        assert (folder / bench.script).is_file(), bench.script
    assert [b.name for b in select("data,fid")] == ["fid", "data"]  # suite order


def test_missing_checkout_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="--benchmarks-dir"):
        benchmarks_dir(tmp_path)


def test_json_is_read_from_the_last_json_line():
    assert parse_json_output('load: 0.7 s\n{"a": 1}\n') == {"a": 1}
    assert parse_json_output('{\n "a": [1,\n 2]\n}') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="no JSON"):
        parse_json_output("only words\n")


def test_smoke_run_measures_both_sides_and_derives_the_ratio(tmp_path, capsys):
    """A real run of bench_fid.py (tiny sizes): each ratio is peer seconds / difflab seconds
    of the same run, every figure a positive measurement, every FID equal to the exact one."""
    out = tmp_path / "bench.json"
    assert main(["bench", "--smoke", "--only", "fid", "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    fid = printed["benchmarks"]["fid"]
    assert fid["error"] is None and fid["seconds"] > 0
    (case,) = fid["raw"]["results"]
    methods = case["methods"]
    for name, row in methods.items():
        assert row["seconds"] > 0, name
        assert row["fid"] == pytest.approx(case["exact_fid"], rel=1e-6), name
    assert len(fid["ratios"]) == 4  # 2 difflab variants x (pytorch-fid, torchmetrics)
    for ratio in fid["ratios"]:
        assert math.isfinite(ratio["ratio"]) and ratio["ratio"] > 0
        ours = "difflab, reference sqrt cached" if "cached" in ratio["measure"] else "difflab"
        peer = next(k for k in methods if k.split(" ")[0] in ratio["peer_name"])
        assert ratio["difflab"] == methods[ours]["seconds"]
        assert ratio["peer"] == methods[peer]["seconds"]
        assert ratio["ratio"] == pytest.approx(ratio["peer"] / ratio["difflab"])


def test_unet_rows_pair_with_the_closest_peers():
    """Matched params and matched FLOPs choose different diffusers widths when they differ."""

    def row(model, params, gflop, img_s, mfu):
        return {"model": model, "dtype": "bf16", "params_M": params, "GFLOP/img": gflop,
                "img/s": img_s, "MFU": mfu}  # fmt: skip

    rows = [
        {"model": "matmul 2048^3", "dtype": "bf16", "GFLOP/s": 400.0, "MFU": 1.0},
        row("difflab:fmnist-cpu", 6.3, 1.0, 200.0, 0.5),
        row("diffusers:40", 5.8, 3.0, 50.0, 0.4),
        row("diffusers:24", 2.1, 1.1, 150.0, 0.41),
        row("difflab:fmnist-cpu+compile", 6.3, 1.0, 230.0, 0.575),
    ]
    compiled = [r for r in unet_ratios(rows) if "+compile" in r.measure]
    assert [r.difflab for r in compiled if r.unit == "img/s"] == [230.0, 230.0]  # both peers
    ratios = {
        (r.peer_name.split("ch")[0], r.unit): r for r in unet_ratios(rows) if r not in compiled
    }
    assert ratios[("diffusers 40", "img/s")].ratio == pytest.approx(4.0)
    assert ratios[("diffusers 40", "GFLOP")].ratio == pytest.approx(3.0)  # difflab 3x cheaper
    assert ratios[("diffusers 24", "fraction")].ratio == pytest.approx(0.5 / 0.41)
    assert "matched FLOPs" in ratios[("diffusers 24", "img/s")].peer_name
    assert ratios[("diffusers 40", "fraction")].target.startswith("MFU >= 0.40")


def test_peer_schedule_is_diffusers_cosine_at_a_steady_rate():
    """Indexed by the budget's clock at a constant step rate, the peer's LR multiplier is
    diffusers' get_cosine_schedule_with_warmup (500 warm-up steps of 6000)."""
    from diffusers.optimization import get_cosine_schedule_with_warmup

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    reference = get_cosine_schedule_with_warmup(opt, num_warmup_steps=500, num_training_steps=6000)
    ours = PeerLRSchedule(500)
    for step in range(6000):
        assert ours.factor(step, step / 6000) == pytest.approx(
            reference.lr_lambdas[0](step), abs=1e-9
        ), step


def test_peer_warmup_ends_at_a_tenth_of_a_short_budget():
    ours = PeerLRSchedule(500)
    assert ours.factor(10, 0.05) == pytest.approx(0.5)  # half way through 10% of the time
    assert ours.factor(20, 0.1) == pytest.approx(1.0)
    assert ours.factor(30, 0.55) == pytest.approx(0.5)  # cosine half way through the rest


class _FakeClock:
    """A perf_counter that moves only when told: `tick` seconds after every batch."""

    def __init__(self, tick: float):
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        return self.now


class _TickAfterBatch(Callback):
    """Each batch takes `clock.tick` seconds of the fake clock, before the guard looks."""

    def __init__(self, clock: _FakeClock):
        self.clock = clock

    def after_batch(self, learn):
        if learn.training:
            self.clock.now += self.clock.tick


class _RecordFitEnd(Callback):
    def __init__(self):
        self.events = []

    def after_epoch(self, learn):
        self.events.append("after_epoch")

    def after_fit(self, learn):
        self.events.append("after_fit")


class _RecordLR(Callback):
    order = 0  # after the LR schedule (-10), before the step

    def __init__(self):
        self.lrs, self.betas = [], []

    def before_batch(self, learn):
        self.lrs.append(learn.optimizer.param_groups[0]["lr"])
        self.betas.append(learn.optimizer.param_groups[0]["betas"][0])


def test_wall_clock_budget_stops_training_and_drives_one_cycle():
    """A 1 s budget at 1/16 s per batch (a fake clock): 16 batches, one whole one-cycle."""
    from difflab.data import InMemoryBatches
    from difflab.training import Learner
    from difflab.training.callbacks.budget import RESOLUTION
    from difflab.training.callbacks.schedule import LRScheduleCB, onecycle_lr, onecycle_momentum

    images = np.random.default_rng(0).integers(0, 256, (400, 1, 8, 8), np.uint8)
    data = InMemoryBatches(images, batch_size=4)  # 100 batches per epoch
    model = torch.nn.Conv2d(1, 1, 3, padding=1)

    def objective(model, batch):
        return model(batch[0]).square().mean()

    clock = _FakeClock(tick=1 / 16)  # exact in binary: the 16th batch ends at exactly 1 s
    record, ended = _RecordLR(), _RecordFitEnd()
    callbacks = with_budget([LRScheduleCB("onecycle", warmup=0.2)], 1.0, clock=clock)
    callbacks += [record, _TickAfterBatch(clock), ended]
    learn = Learner(model, data, objective, lr=1e-2, callbacks=callbacks)
    learn.fit(3)
    guard = find_callback(learn, WallClockBudget)
    assert guard.stopped and learn.step == 16  # stopped by the budget inside the first epoch
    # ended normally, not cancelled: the epoch's after_epoch and after_fit still ran
    assert ended.events == ["after_epoch", "after_fit"]
    # batch k starts at k/16 of the budget: the one-cycle curve at that share of its points
    steps = [k * RESOLUTION // 16 for k in range(16)]
    assert record.lrs == [
        pytest.approx(onecycle_lr(s, RESOLUTION, max_lr=1e-2, pct_start=0.2)) for s in steps
    ]
    assert record.betas == [
        pytest.approx(onecycle_momentum(s, RESOLUTION, pct_start=0.2)) for s in steps
    ]
    assert record.lrs[0] == pytest.approx(1e-2 / 25, rel=0.01)  # one-cycle starts at max/25
    assert max(record.lrs) == pytest.approx(1e-2, rel=0.02)  # and peaks near max_lr at 20%
    assert record.lrs.index(max(record.lrs)) in (3, 4) and record.lrs[-1] < 0.05e-2
    with pytest.raises(ValueError, match="budget"):
        WallClockBudget(0)


def test_levers_smoke_run_compares_each_lever_with_the_step_without_it(tmp_path, capsys):
    assert main(["bench", "--smoke", "--only", "levers", "--json"]) == 0
    levers = json.loads(capsys.readouterr().out)["benchmarks"]["levers"]
    assert levers["error"] is None
    rows = levers["raw"]["rows"]
    assert {r["lever"] for r in rows} >= {"precision/layout"}
    assert any(r["lever"].startswith("attention") for r in rows)
    assert len(levers["ratios"]) == len(rows)
    for row, ratio in zip(rows, levers["ratios"]):
        assert row["img_per_s"] > 0 and row["baseline_img_per_s"] > 0
        assert ratio["difflab"] == row["img_per_s"] and ratio["peer"] == row["baseline_img_per_s"]
        assert ratio["ratio"] == pytest.approx(row["img_per_s"] / row["baseline_img_per_s"])
        # speedup comes from the timings, ratio from the rounded img/s: equal to rounding
        assert ratio["ratio"] == pytest.approx(row["speedup"], rel=0.02)
