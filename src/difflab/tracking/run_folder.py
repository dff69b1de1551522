"""Run folders: `runs/NNNNN-<dataset>-<preset>/`, made before any work starts.

A run folder holds everything needed to trace a sample grid back to what made it: the resolved
config, the environment (package versions, git commit and the diff of uncommitted changes: the
code that ran), metrics, sample grids, checkpoints and the final weights.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from difflab.files import atomic_write_json, atomic_write_text, sha256_file
from difflab.tracking.paths import inside

CONFIG_FILE = "config.json"
# `sha256sum` format: config.json's hash when the run began (resume refuses an edited config)
CONFIG_HASH_FILE = "config.sha256"
ENVIRONMENT_FILE = "environment.json"
CODE_DIFF_FILE = "code.diff"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
CHECKPOINTS_DIR = "checkpoints"

_PACKAGES = ("difflab", "torch", "numpy", "safetensors", "accelerate", "pillow", "diffusers")
_NUMBERED = re.compile(r"^(\d{5})-")
_RESERVED_DIR = ".numbers"
# Untracked files larger than this (or binary) are named in code.diff but not copied into it:
# a stray dataset or checkpoint in the checkout must not bloat every run folder.
UNTRACKED_MAX_BYTES = 256 * 1024
UNTRACKED_TOTAL_CHARS = 4 * 1024 * 1024
# One `git diff` process per file: a checkout with thousands of untracked files (images, say)
# must not make every run's start slow.
UNTRACKED_MAX_FILES = 100


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_")[:40] or "run"


def next_run_number(runs_dir: Path) -> int:
    names = [p.name for p in runs_dir.glob("*")]
    names += [p.name + "-" for p in (runs_dir / _RESERVED_DIR).glob("*")]
    numbers = [int(m.group(1)) for n in names if (m := _NUMBERED.match(n))]
    return max(numbers, default=0) + 1


def _reserve_run_number(runs_dir: Path) -> int:
    """A run number no other process holds: O_EXCL creation of `.numbers/NNNNN` is atomic.

    (mkdir of the run folder alone is not enough: two runs with different names could both
    take number N.)
    """
    reserved = runs_dir / _RESERVED_DIR
    reserved.mkdir(exist_ok=True)
    while True:
        number = next_run_number(runs_dir)
        try:
            os.close(os.open(reserved / f"{number:05d}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return number
        except FileExistsError:
            continue


def create_run_folder(
    runs_dir: str | Path,
    config: dict[str, Any],
    *,
    dataset: str,
    preset: str,
    name: str | None = None,
) -> Path:
    """Make a new numbered run folder: config.json (+ config.sha256), environment.json, code.diff."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    suffix = _slug(name) if name else f"{_slug(Path(dataset).name)}-{_slug(preset)}"
    while True:
        run_dir = runs_dir / f"{_reserve_run_number(runs_dir):05d}-{suffix}"
        try:
            run_dir.mkdir()
            break
        except FileExistsError:  # a folder made by hand with this number: take the next
            continue
    (run_dir / SAMPLES_DIR).mkdir()
    (run_dir / CHECKPOINTS_DIR).mkdir()
    atomic_write_json(run_dir / CONFIG_FILE, config)
    digest = sha256_file(run_dir / CONFIG_FILE)
    atomic_write_text(run_dir / CONFIG_HASH_FILE, f"{digest}  {CONFIG_FILE}\n")
    env, diff = describe_environment()
    atomic_write_json(run_dir / ENVIRONMENT_FILE, env)
    (run_dir / CODE_DIFF_FILE).write_text(diff)
    return run_dir


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _untracked_file_diff(root: Path, name: str) -> str:
    """A `git diff` of an untracked file against /dev/null, or a one-line note when skipped."""
    path = root / name
    size = path.stat().st_size if path.is_file() else 0
    if size > UNTRACKED_MAX_BYTES:
        return f"# untracked file {name} not included: {size} bytes > {UNTRACKED_MAX_BYTES}\n"
    try:  # --no-index exits 1 when the files differ (always, here): not _git's "success only"
        out = subprocess.run(
            ["git", "diff", "--no-color", "--no-index", "--", "/dev/null", name],
            cwd=root, capture_output=True, text=True, timeout=20, errors="replace",
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return f"# untracked file {name} not included: git diff failed\n"
    if out.returncode not in (0, 1) or "\nBinary files " in "\n" + out.stdout:
        return f"# untracked file {name} not included: binary or unreadable\n"
    return out.stdout


def code_diff(code_dir: Path) -> str:
    """`git diff HEAD` plus every untracked, not ignored file: all the code that would run."""
    diff = _git("diff", "HEAD", cwd=code_dir) or ""
    top = _git("rev-parse", "--show-toplevel", cwd=code_dir)
    if not top:
        return diff
    root = Path(top.strip())
    untracked = _git("ls-files", "--others", "--exclude-standard", "-z", cwd=root) or ""
    names = [name for name in untracked.split("\0") if name]
    parts, total = [diff], len(diff)
    for name in names[:UNTRACKED_MAX_FILES]:
        if total > UNTRACKED_TOTAL_CHARS:  # e.g. a run folder inside the checkout, not ignored
            parts.append(f"# untracked file {name} not included: code.diff is already too long\n")
            continue
        parts.append(_untracked_file_diff(root, name))
        total += len(parts[-1])
    if len(names) > UNTRACKED_MAX_FILES:
        rest = len(names) - UNTRACKED_MAX_FILES
        parts.append(f"# {rest} more untracked files not included (limit {UNTRACKED_MAX_FILES})\n")
    return "".join(parts)


def describe_environment(code_dir: Path | None = None) -> tuple[dict[str, Any], str]:
    """(environment facts, diff of uncommitted changes) for the code that is running."""
    code_dir = code_dir or Path(__file__).resolve().parent
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    commit = _git("rev-parse", "HEAD", cwd=code_dir)
    diff = code_diff(code_dir)
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "argv": sys.argv,
        "packages": versions,
        "git_commit": commit.strip() if commit else None,
        "git_dirty": bool(diff.strip()),
    }
    return env, diff


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run folder; ValueError naming the file when it is cut off or not ours,
    or when it is a symlink leading out of the run folder (never followed)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a difflab run folder (no {CONFIG_FILE})")
    try:
        config = json.loads(inside(run_dir, CONFIG_FILE).read_text())
    except PermissionError as err:
        raise ValueError(str(err)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: not valid JSON, perhaps cut off by a crash mid-write ({err}); "
            "restore it or remove the run folder"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a run config is a JSON object, not {type(config).__name__}")
    return config
