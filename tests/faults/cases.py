"""Not a test: one fault case (a file, a damage, a command, what must happen) and how it runs.

Paths in `Expect.writes` are relative to the case folder, which holds `runs/<RUN_NAME>/` (a
copy of the session's tiny run), `outside/` (where `damage.link_out` puts the real files) and
any input file of the case.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .harness import Expect, board_session, difflab, judge, snapshot

RUN_NAME = "00001-fashion_mnist-tiny"
RUN = f"runs/{RUN_NAME}"
NEWEST = "checkpoints/000004-step8"  # the end of epoch 2, after its validation
OLDER = "checkpoints/000003-step8"  # the end of epoch 2's training steps, before validation

# What `train --resume` writes when it finishes a run: the model, the tracker's files, a new
# checkpoint (and the pruning of the older intact one: keep 2), the runs folder's index.
RESUME_WRITES = (
    f"{RUN}/model.safetensors",
    f"{RUN}/model.json",
    f"{RUN}/run.json",
    f"{RUN}/metrics.jsonl",
    f"{RUN}/artifacts.jsonl",
    f"{RUN}/checkpoints/000005-step8.*",
    f"{RUN}/{OLDER}.*",
    "runs/runs.sqlite*",
)
INDEX_WRITES = ("runs/runs.sqlite", "runs/runs.sqlite-wal", "runs/runs.sqlite-shm")

COMMANDS: dict[str, Callable[[Path], list]] = {
    "train --resume": lambda run_dir: ["train", "--resume", run_dir, "--no-progress"],
    "sample": lambda run_dir: ["sample", run_dir, "--n", "2", "--steps", "2", "--sampler", "ddim"],
    "eval": lambda run_dir: ["eval", run_dir, "--n", "8", "--steps", "2", "--no-kid"],
    "runs ls": lambda run_dir: ["runs", "ls", "--runs-dir", run_dir.parent],
    "runs show": lambda run_dir: ["runs", "show", "1", "--runs-dir", run_dir.parent],
    "runs reindex": lambda run_dir: ["runs", "reindex", "--runs-dir", run_dir.parent],
}


@dataclass(frozen=True)
class Case:
    """`damage` done to `target` (relative to the run folder), then `command` on the run."""

    target: str
    damage: Callable[[Path], None]
    command: str  # a key of COMMANDS, or "board"
    expect: Expect
    gets: tuple[tuple[str, int], ...] = ()  # board: (path, HTTP status) of each GET
    prepare: tuple[str, ...] = ()  # COMMANDS run before the damage (e.g. build the index)

    @property
    def id(self) -> str:
        return f"{self.target.replace('../', '')}-{self.damage.__name__}-{self.command}".replace(
            " ", "_"
        )


def damaged_copy(case: Case, template: Path, root: Path) -> Path:
    """`root/runs/<run>`: a copy of `template` with the case's damage done; returns the run."""
    run_dir = root / "runs" / template.name
    shutil.copytree(template, run_dir, symlinks=True)
    for command in case.prepare:
        done = difflab(*COMMANDS[command](run_dir))
        assert done.returncode == 0, done.stderr
    case.damage(run_dir / case.target)
    return run_dir


def run_case(case: Case, template: Path, root: Path) -> list[str]:
    """Damage a copy of `template`, run the command, and return what went wrong (if anything)."""
    run_dir = damaged_copy(case, template, root)
    before = snapshot(root)
    if case.command != "board":
        return judge(difflab(*COMMANDS[case.command](run_dir)), case.expect, before, root)
    out, statuses = board_session(run_dir.parent, [path for path, _ in case.gets])
    problems = judge(out, case.expect, before, root)
    wrong = {path: statuses.get(path) for path, want in case.gets if statuses.get(path) != want}
    return problems + ([f"HTTP statuses {wrong}, want {dict(case.gets)}"] if wrong else [])
