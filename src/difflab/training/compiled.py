"""torch.compile for training, with the compiled kernels kept on disk between runs.

Inductor caches what it compiles (FX graphs, AOTAutograd graphs, the C++ kernels) under
TORCHINDUCTOR_CACHE_DIR, by default a folder in /tmp that a reboot or a container restart
empties. difflab points it at a folder in the user's cache instead, so the price of compiling
(92 s for fmnist-cpu at batch 64 on one core of the 2-core CPU, docs/benchmarks.md) is paid once
per machine and model shape; later runs load the kernels in a few seconds. A cache folder the
user chose (the variable already set) is left alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

log = logging.getLogger(__name__)

CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"


def torch_default_cache_dir() -> str | None:
    """Inductor's own default folder, which importing torch._dynamo writes into the variable."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # moved in another torch release: then every value counts as chosen
        return None
    return os.path.abspath(default_cache_dir())


def inductor_cache_dir(environ: dict[str, str] | None = None) -> Path:
    """The folder compiled kernels go to: $TORCHINDUCTOR_CACHE_DIR when the user set it (not
    torch's default, which torch itself puts there), else difflab/torchinductor in
    $XDG_CACHE_HOME (default ~/.cache)."""
    env = os.environ if environ is None else environ
    chosen = env.get(CACHE_VARIABLE)
    if chosen and os.path.abspath(chosen) != torch_default_cache_dir():
        return Path(chosen)
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "difflab" / "torchinductor"


def compile_for_training(model: nn.Module) -> dict:
    """Compile `model` in place (its state_dict keys stay those of the plain module) with the
    on-disk kernel cache; returns what to record: the cache folder and whether it held kernels
    before (warm) or the first step will compile them (cold)."""
    cache = inductor_cache_dir()
    os.environ[CACHE_VARIABLE] = str(cache)  # inductor reads it when it first compiles
    warm = cache.is_dir() and any(cache.iterdir())
    model.compile()
    log.info(
        "torch.compile: kernel cache %s (%s)",
        cache,
        "warm: earlier runs' kernels load in seconds"
        if warm
        else "cold: the first step compiles, 1-2 minutes on a 2-core CPU, counted in the budget",
    )
    return {"cache_dir": str(cache), "warm_cache": warm}
