"""The package boundaries of ARCHITECTURE.md, read from the source (every import, lazy ones
inside functions included), plus the light-import checks in fresh interpreters."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "difflab"

# package (or top-level module) of difflab -> the difflab packages it may import. The order is
# the floors of ARCHITECTURE.md: each may import the floors below it, never one above.
ALLOWED: dict[str, set[str]] = {
    "files": set(),
    "precision": set(),
    "config": {"files"},
    "data": {"files"},
    "diffusion": set(),
    "models": set(),
    "samplers": {"diffusion"},
    "io": {"files", "config", "diffusion", "models"},
    "metrics": {"files", "data", "models"},
    "tracking": {"files"},
    "generation": {"config", "data", "diffusion", "io", "precision", "samplers"},
    "evaluation": {"config", "data", "generation", "io", "metrics", "samplers"},
    "training": {
        "files", "config", "data", "diffusion", "models", "io", "metrics", "tracking",
        "generation", "precision",
    },
    "experiment": {
        "files", "config", "data", "diffusion", "models", "io", "metrics", "tracking",
        "generation", "evaluation", "training", "precision",
    },
    "bench": {
        "files", "config", "data", "diffusion", "models", "io", "metrics", "samplers",
        "generation", "evaluation", "training", "experiment", "precision",
    },
}  # fmt: skip
# cli may import anything; nothing may import cli (but difflab/__main__.py, its entry point).
EVERYTHING = {*ALLOWED, "samplers", "cli", "bench"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks (imports there never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (SRC / relative).with_suffix(".py").is_file() or (
        SRC / relative / "__init__.py"
    ).is_file()


def difflab_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported difflab module, under TYPE_CHECKING) for every import statement in the file."""
    tree = ast.parse(path.read_text())
    typing_only = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from difflab.x import y` imports the module difflab.x.y if there is one, else
            # the name y from difflab.x
            names = [
                f"{node.module}.{alias.name}"
                if is_module(f"{node.module}.{alias.name}")
                else node.module
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name == "difflab" or name.startswith("difflab."):
                found.append((name, node.lineno in typing_only))
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor_of(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


@pytest.mark.parametrize("module", sorted(m for m in MODULES if floor_of(m) in ALLOWED))
def test_every_import_goes_down_a_floor(module):
    floor = floor_of(module)
    bad = sorted(
        {
            target
            for target, _ in difflab_imports(MODULES[module])
            if floor_of(target) not in {floor, "", *ALLOWED[floor]}
        }
    )
    assert not bad, f"{module} ({floor}) imports {bad}; allowed: {sorted(ALLOWED[floor])}"


def test_nothing_outside_cli_imports_the_cli():
    offenders = [
        module
        for module, path in MODULES.items()
        if floor_of(module) not in ("cli", "__main__")
        for target, _ in difflab_imports(path)
        if floor_of(target) == "cli"
    ]
    assert not offenders, offenders


def test_every_floor_is_listed():
    # a new package must be placed on a floor (ARCHITECTURE.md) before it can pass the test above
    floors = {floor_of(m) for m in MODULES} - {"", "cli", "__main__"}
    assert floors <= set(ALLOWED), floors - set(ALLOWED)


def test_no_import_circles_between_modules_outside_type_checking():
    graph = {
        module: {
            target
            for target, typing_only in difflab_imports(path)
            if not typing_only and target in MODULES and target != module
        }
        for module, path in MODULES.items()
    }
    # a package's __init__ re-exports its modules; a module importing its own package's
    # __init__ from inside it would be a circle, and is caught like any other
    circles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start and not _is_package_init_edge(trail):
                    circles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not circles, circles[:5]


def _is_package_init_edge(trail: list[str]) -> bool:
    """An __init__ importing its own submodules, which import siblings: not a circle unless a
    submodule imports the __init__ back (then the trail holds the package after a submodule)."""
    package = trail[0]
    return (
        all(m.startswith(package + ".") for m in trail[1:])
        and MODULES[package].name == "__init__.py"
    )


# --- light imports, checked in fresh interpreters (sys.modules after import) ---
FORBIDDEN_AT_IMPORT = {
    "difflab": ["torch", "numpy"],
    "difflab.config": ["torch", "numpy"],
    "difflab.files": ["torch", "numpy"],
    "difflab.cli.main": ["torch", "numpy"],
    "difflab.tracking": ["torch", "wandb", "tensorboard"],
    "difflab.samplers": ["scipy", "diffusers", "wandb", "matplotlib"],
    "difflab.diffusion": ["scipy"],
    "difflab.metrics": ["scipy"],
    "difflab.io.images": ["matplotlib"],
    "difflab.training": ["wandb", "tensorboard", "scipy", "matplotlib", "diffusers"],
    "difflab.generation": ["scipy", "matplotlib", "wandb", "diffusers"],
}


def imported_after(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", sorted(FORBIDDEN_AT_IMPORT))
def test_importing_stays_light(module):
    loaded = imported_after(module)
    leaked = [m for m in FORBIDDEN_AT_IMPORT[module] if m in loaded]
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
