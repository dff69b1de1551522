"""`--train.compile`: the kernel cache folder, and a compiled block that matches eager and whose
second compile, in a fresh process, is served from the on-disk cache."""

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


# One residual block (GroupNorm, SiLU, convolutions, time conditioning) compiled for training:
# forward and backward against an eager copy of the same weights, then inductor's own counters
# of FX-graph cache hits and misses.
SCRIPT = """
import copy, json, torch
from torch._dynamo.utils import counters
from difflab.models.blocks import ResBlock
from difflab.training.compiled import compile_for_training

torch.manual_seed(0)
eager = ResBlock(8, 16, 12, groups=4, zero_init=False)
compiled = copy.deepcopy(eager)
record = compile_for_training(compiled)
x, emb = torch.randn(4, 8, 6, 6), torch.randn(4, 12)
outputs = []
for net in (eager, compiled):
    out = net(x, emb)
    out.square().mean().backward()
    outputs.append((out.detach(), [p.grad for p in net.parameters()]))
(out_e, grads_e), (out_c, grads_c) = outputs
print(json.dumps(record | {
    "out_err": (out_e - out_c).abs().max().item(),
    "grad_err": max((a - b).abs().max().item() for a, b in zip(grads_e, grads_c)),
    "keys_equal": list(eager.state_dict()) == list(compiled.state_dict()),
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


def test_compiled_block_matches_eager_and_the_second_process_reads_the_disk_cache(tmp_path):
    cold, warm = run_once(tmp_path), run_once(tmp_path)
    folder = tmp_path / "difflab" / "torchinductor"
    assert cold["cache_dir"] == warm["cache_dir"] == str(folder)
    assert not cold["warm_cache"] and warm["warm_cache"]
    for run in (cold, warm):
        assert run["out_err"] < 1e-5 and run["grad_err"] < 1e-5 and run["keys_equal"]
    assert cold["misses"] >= 1 and cold["hits"] == 0  # compiled: forward and backward graphs
    assert warm["hits"] >= 1 and warm["misses"] == 0  # loaded from the folder, nothing compiled
