"""The package boundaries of ../shared/STYLE.md §1, checked in fresh interpreters."""

import json
import subprocess
import sys

import pytest

# package -> modules that must not be imported as a consequence of importing it
FORBIDDEN = {
    "difflab": ["torch", "numpy"],
    "difflab.config": ["torch", "numpy"],
    "difflab.cli.main": ["torch", "numpy"],
    "difflab.tracking": ["torch", "difflab.training", "difflab.metrics", "wandb", "tensorboard"],
    "difflab.tracking.base": ["torch", "difflab.training", "difflab.metrics"],
    "difflab.diffusion": ["difflab.models", "difflab.samplers", "difflab.training", "scipy"],
    "difflab.samplers": [
        "difflab.models",
        "difflab.training",
        "difflab.metrics",
        "difflab.tracking",
        "wandb",
        "scipy",
        "diffusers",
    ],
    "difflab.models": ["difflab.diffusion", "difflab.samplers", "difflab.training", "diffusers"],
    "difflab.metrics": ["difflab.training", "difflab.samplers", "difflab.tracking", "scipy"],
    "difflab.data": ["difflab.diffusion", "difflab.training", "difflab.models"],
    "difflab.io.images": ["difflab.training", "matplotlib"],
    "difflab.io.checkpoint": ["difflab.training"],
    "difflab.training": ["wandb", "tensorboard", "scipy", "matplotlib", "diffusers", "difflab.cli"],
}


def imported_after(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_package_does_not_import_what_it_must_not(module):
    loaded = imported_after(module)
    leaked = [m for m in FORBIDDEN[module] if m in loaded]
    assert not leaked, f"importing {module} imported {leaked}"


def test_help_builds_every_parser_without_torch():
    code = (
        "import sys; from difflab.cli.main import build_parser; p = build_parser(); "
        "print('torch' in sys.modules, len(p._subparsers._group_actions[0].choices))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch_loaded, n_commands = out.stdout.split()
    assert torch_loaded == "False"
    assert int(n_commands) >= 8
