"""Suite-wide settings: offline datasets beside the checkout, and a cache that tests cannot pollute."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# The real Fashion-MNIST files live beside the checkout (CI sets DIFFLAB_DATA to the same place).
os.environ.setdefault("DIFFLAB_DATA", str(SHARED_DATASETS))
# Nothing in the suite may reach the network or write to the user's wandb account.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own difflab cache folder, so a test never sees another's cache."""
    cache = tmp_path_factory.mktemp("difflab-cache")
    monkeypatch.setenv("DIFFLAB_CACHE", str(cache))
    yield


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate keeps its mixed precision in a process-wide singleton, and tests in one
    process train with different precisions: each test starts from a fresh state."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def model_calls(monkeypatch) -> list[int]:
    """The timestep of every network call made by a model the CLI loads (load_trained hooked):
    what a sampler really ran, independent of what it reports."""
    import difflab.io.trained as trained_io

    seen: list[int] = []
    original = trained_io.load_trained

    def load_and_count(path, **kwargs):
        trained = original(path, **kwargs)
        trained.model.register_forward_pre_hook(lambda _m, args: seen.append(int(args[1][0])))
        return trained

    monkeypatch.setattr(trained_io, "load_trained", load_and_count)
    return seen
