"""Turn each benchmark script's JSON into rows of (difflab figure, peer figure, ratio).

Every ratio is oriented the same way: above 1 means difflab is better (faster, cheaper, lower
FID). It is computed here from the two measured figures of the row, never copied from a script's
own summary, so the table cannot disagree with the figures it shows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Ratio:
    """One line of the summary: a measure, difflab's figure, the peer's, and the advantage."""

    benchmark: str
    measure: str
    unit: str
    difflab: float
    peer: float
    peer_name: str
    better: Better
    target: str = ""

    @property
    def ratio(self) -> float:
        """difflab's advantage: ours/theirs when higher is better, theirs/ours when lower is."""
        if self.better == "higher":
            return self.difflab / self.peer
        return self.peer / self.difflab

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def _closest(rows: list[dict], key: str, value: float) -> dict:
    return min(rows, key=lambda r: abs(math.log(r[key] / value)))


def unet_ratios(rows: list[dict]) -> list[Ratio]:
    """bench_unet.py --json: img/s and FLOPs/img at matched params / FLOPs, and MFU, per dtype."""
    out: list[Ratio] = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        models = [r for r in rows if r["dtype"] == dtype and "img/s" in r]
        peers = [r for r in models if r["model"].startswith("diffusers:")]
        if not peers:
            continue
        for ours in (r for r in models if r["model"].startswith("difflab:")):  # eager, compiled
            by_params = _closest(peers, "params_M", ours["params_M"])
            by_flops = _closest(peers, "GFLOP/img", ours["GFLOP/img"])
            if by_params is by_flops:
                out += _unet_pair(ours, by_params, dtype, "matched params and FLOPs")
                continue
            for how, peer in (("matched params", by_params), ("matched FLOPs", by_flops)):
                out += _unet_pair(ours, peer, dtype, how)
    return out


def _unet_pair(ours: dict, peer: dict, dtype: str, how: str) -> list[Ratio]:
    name = f"diffusers {peer['model'].split(':')[1]}ch ({peer['params_M']}M, {how})"
    model = ours["model"].split(":")[1]
    common = {"benchmark": "unet", "peer_name": name}
    mfu_target = "MFU >= 0.40 of bf16 peak at batch 64" if dtype == "bf16" else ""
    return [
        Ratio(measure=f"{model} train img/s {dtype}", unit="img/s", difflab=ours["img/s"],
              peer=peer["img/s"], better="higher", **common),
        Ratio(measure=f"{model} GFLOP/img {dtype} ({ours['params_M']}M)", unit="GFLOP",
              difflab=ours["GFLOP/img"], peer=peer["GFLOP/img"], better="lower", **common),
        Ratio(measure=f"{model} MFU {dtype} (matmul peak, same run)", unit="fraction",
              difflab=ours["MFU"], peer=peer["MFU"], better="higher", target=mfu_target,
              **common),
    ]  # fmt: skip


def sampler_ratios(data: dict) -> list[Ratio]:
    """bench_samplers.py: microseconds of sampler arithmetic per step, per sampler and shape."""
    return [
        Ratio(
            benchmark="samplers",
            measure=f"{r['sampler']} overhead/step {tuple(r['shape'])}",
            unit="us",
            difflab=r["difflab_us_per_step"],
            peer=r["diffusers_us_per_step"],
            peer_name="diffusers scheduler.step loop",
            better="lower",
        )
        for r in data["results"]
    ]


FID_PEERS = {
    "pytorch-fid (scipy sqrtm)": "pytorch-fid method (scipy sqrtm)",
    "torchmetrics (eigvals)": "torchmetrics _compute_fid (eigvals)",
}


def fid_ratios(data: dict) -> list[Ratio]:
    """bench_fid.py: seconds for one FID from feature statistics, difflab vs each peer."""
    out = []
    for case in data["results"]:
        methods = case["methods"]
        for key, peer_name in FID_PEERS.items():
            if key not in methods or not isinstance(methods[key]["fid"], float):
                continue
            for ours in ("difflab", "difflab, reference sqrt cached"):
                cached = " (reference sqrt cached)" if "cached" in ours else ""
                target = ">= 6x at d=2048" if "pytorch" in key and case["d"] == 2048 else ""
                out.append(
                    Ratio(
                        benchmark="fid",
                        measure=f"FID from stats d={case['d']} n={case['n']}{cached}",
                        unit="s",
                        difflab=methods[ours]["seconds"],
                        peer=methods[key]["seconds"],
                        peer_name=peer_name,
                        better="lower",
                        target=target,
                    )
                )
    return out


def data_ratios(data: dict) -> list[Ratio]:
    """bench_data.py: Fashion-MNIST batches/s, InMemoryBatches vs DataLoader(workers=w)."""
    prefix, suffix = "dataloader_w", "_batches_per_s"
    return [
        Ratio(
            benchmark="data",
            measure=f"batches/s (batch {data['batch_size']}, 32x32 padded)",
            unit="batch/s",
            difflab=data["in_memory_batches_per_s"],
            peer=value,
            peer_name=f"DataLoader, per-item transforms, workers={key[len(prefix) : -len(suffix)]}",
            better="higher",
            target=">= 10x",
        )
        for key, value in data.items()
        if key.startswith(prefix) and key.endswith(suffix)
    ]


def lever_ratios(data: dict) -> list[Ratio]:
    """bench_levers.py: each lever's img/s against the same step without it (same run)."""
    return [
        Ratio(
            benchmark="levers",
            measure=f"{row['lever']}: {row['case']}"
            + (f" (compile {row['setup_s']:g} s once)" if row["setup_s"] else ""),
            unit="img/s",
            difflab=row["img_per_s"],
            peer=row["baseline_img_per_s"],
            peer_name=f"difflab, {row['baseline']}",
            better="higher",
        )
        for row in data["rows"]
    ]


def learner_ratios(data: dict) -> list[Ratio]:
    """bench_learner.py: step time of the Learner (+ standard callbacks) vs a bare loop."""
    ms = data["ms_per_step"]
    return [
        Ratio(
            benchmark="learner",
            measure=f"step time, {variant.replace('_', ' ')} (batch {data['batch_size']})",
            unit="ms",
            difflab=ms[variant],
            peer=ms["bare_fp32"],
            peer_name="bare PyTorch loop, fp32",
            better="lower",
        )
        for variant in ("learner_no_callbacks", "learner_standard_fp32")
        if variant in ms
    ]


E2E_PEERS = {
    "peer": "diffusers example recipe",
    "lucidrains": "lucidrains denoising-diffusion-pytorch",
}


def e2e_ratios(data: dict) -> list[Ratio]:
    """bench_e2e.py: FID at equal training wall-clock, and the throughputs behind it, against
    each peer that ran (a peer that was skipped has no rows: see `e2e_notes`)."""
    ours, minutes = data["difflab"], data["minutes"]
    floor = ours.get("fid_floor")
    floor_note = f", floor {floor:.2f}" if floor else ""
    out = []
    for key, name in E2E_PEERS.items():
        peer = data.get(key)
        if not peer or "skipped" in peer:
            continue
        common = {"benchmark": "e2e", "peer_name": f"{name} ({peer['model']})"}
        out += [
            Ratio(measure=f"FMNIST-FID n={data['n']} after {minutes:g} min{floor_note}",
                  unit="FID", difflab=ours["fid"], peer=peer["fid"], better="lower",
                  target=">= 2x", **common),
            Ratio(measure="training img/s (during the budget)", unit="img/s",
                  difflab=ours["train_images_per_s"], peer=peer["train_images_per_s"],
                  better="higher", **common),
            Ratio(measure="sampling img/s (DDIM 25 steps)", unit="img/s",
                  difflab=ours["sample_images_per_s"], peer=peer["sample_images_per_s"],
                  better="higher", **common),
        ]  # fmt: skip
    return out


def e2e_notes(data: dict) -> list[str]:
    """bench_e2e.py: one line per peer that did not run, saying why."""
    return [
        f"{name}: skipped, {data[key]['skipped']}"
        for key, name in E2E_PEERS.items()
        if "skipped" in data.get(key, {})
    ]
