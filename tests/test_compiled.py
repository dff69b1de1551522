"""`--train.compile`: the kernel cache folder, and a compiled UNet whose bf16 training gradients
match eager ones and whose second compile, in a fresh process, is served from the on-disk cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from difflab.training.compiled import CACHE_VARIABLE, inductor_cache_dir, torch_default_cache_dir


def test_cache_folder_follows_the_environment(tmp_path):
    chosen = str(tmp_path / "mine")
    assert inductor_cache_dir({CACHE_VARIABLE: chosen, "XDG_CACHE_HOME": "/x"}) == Path(chosen)
    assert inductor_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/difflab/torchinductor")
    assert inductor_cache_dir({}) == Path.home() / ".cache" / "difflab" / "torchinductor"
    # importing torch._dynamo writes torch's own default there: that is no user's choice
    default = {CACHE_VARIABLE: torch_default_cache_dir(), "XDG_CACHE_HOME": "/x"}
    assert inductor_cache_dir(default) == Path("/x/difflab/torchinductor")


# A small UNet (every block kind the presets use but attention, two levels), one v-objective
# training step under bf16 autocast (what --train.mixed-precision auto picks on a bf16 CPU),
# compiled for training and eager, each against the eager fp32 gradients of the same weights,
# batch and noise; then inductor's own counters of FX-graph cache hits and misses.
# With F.interpolate in the upsampling path, inductor (torch 2.13, CPU) returned zero gradients
# for every parameter below the top level (relative error 0.096 overall, 1.0 on those weights):
# a compiled 30-minute run sat on a loss plateau and scored FID 10. The fix is
# models.blocks.nearest_upsample.
SCRIPT = """
import copy, json, torch
from torch._dynamo.utils import counters
from difflab.config import RunConfig
from difflab.diffusion import make_objective
from difflab.experiment.build import build_schedule
from difflab.models.unet import UNet, UNetConfig
from difflab.training.compiled import compile_for_training

torch.manual_seed(0)
base = UNet(UNetConfig(in_channels=1, channels=(8, 16), blocks=(1, 1), attention_levels=(),
                       mid_blocks=1, mid_attention=False, norm_groups=4))
with torch.no_grad():  # the zero-initialised output layers would hide the gradients below them
    for p in base.parameters():
        if not p.any():
            p.normal_(0, 0.02)
objective = make_objective(build_schedule(RunConfig()), objective="v", min_snr_gamma=5.0)
x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)) - 0.5
record = {}

def grads(compiled, bf16):
    net = copy.deepcopy(base)
    if compiled:
        record.update(compile_for_training(net))
        record["keys_equal"] = list(net.state_dict()) == list(base.state_dict())
    torch.manual_seed(123)  # the same timesteps and noise in every case
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = objective(net, x)
    loss.backward()
    return {name: p.grad for name, p in net.named_parameters()}

ref = grads(False, False)
def errors(g):
    total = (sum((g[k] - ref[k]).norm() ** 2 for k in ref) / sum(r.norm() ** 2 for r in ref.values())) ** 0.5
    convs = [((g[k] - ref[k]).norm() / ref[k].norm()).item() for k in ref if k.endswith("conv1.weight")]
    return {"total": total.item(), "worst_conv1": max(convs)}
print(json.dumps(record | {
    "eager_bf16": errors(grads(False, True)),
    "compiled_bf16": errors(grads(True, True)),
    "hits": counters["inductor"]["fxgraph_cache_hit"],
    "misses": counters["inductor"]["fxgraph_cache_miss"],
}))
"""


def run_once(cache_home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != CACHE_VARIABLE}
    env |= {"XDG_CACHE_HOME": str(cache_home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_compiled_unet_trains_like_eager_in_bf16_and_the_second_process_reads_the_cache(tmp_path):
    cold, warm = run_once(tmp_path), run_once(tmp_path)
    folder = tmp_path / "difflab" / "torchinductor"
    assert cold["cache_dir"] == warm["cache_dir"] == str(folder)
    assert not cold["warm_cache"] and warm["warm_cache"]
    for run in (cold, warm):
        assert run["keys_equal"]
        assert run["eager_bf16"]["total"] < 0.02  # bf16 rounding alone: the scale to compare with
        assert run["compiled_bf16"]["total"] < 2 * run["eager_bf16"]["total"] + 0.005
        assert run["compiled_bf16"]["worst_conv1"] < 0.1  # no level left without its gradient
    assert cold["misses"] >= 1 and cold["hits"] == 0  # compiled: forward and backward graphs
    assert warm["hits"] >= 1 and warm["misses"] == 0  # loaded from the folder, nothing compiled
