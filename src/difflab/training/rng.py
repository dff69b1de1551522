"""Every random-number generator's state, as tensors and JSON-able values (never pickle)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def get_rng_state() -> dict[str, Any]:
    """States of torch (CPU, CUDA, MPS), numpy's global RandomState and Python's `random`."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),
        "cuda": [],
        "mps": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state["mps"] is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def gather_torch_rng(accelerator: Any) -> list[torch.Tensor]:
    """Every process's torch CPU generator state (DDP: each rank draws its own noise).

    All processes must call this (it is a collective); each gets the list, rank order.
    """
    mine = torch.get_rng_state().to(accelerator.device)
    return list(accelerator.gather(mine[None]).cpu().unbind(0))


def set_torch_rng_of_rank(states: list[torch.Tensor], rank: int) -> None:
    """Restore this rank's CPU generator from `gather_torch_rng`'s list, when it has one."""
    if rank < len(states):
        torch.set_rng_state(states[rank].contiguous())
