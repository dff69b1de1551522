"""Weights & Biases tracker (optional: `pip install difflab[wandb]`).

Offline works too: WANDB_MODE=offline writes everything under WANDB_DIR (default: the run
folder) for a later `wandb sync`. Steps go in as a metric ("trainer/step") rather than W&B's
own step counter, which silently drops any value logged at a smaller step than the last.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any, Literal

from difflab.tracking.run_folder import CODE_DIFF_FILE, ENVIRONMENT_FILE

STEP_METRIC = "trainer/step"


class WandbTracker:
    """Config at start, every scalar at its step, sample grids as images, files as artifacts.

    Checkpoints reported during training are uploaded once, at the end (the last file of each
    name), so a run does not push every intermediate checkpoint.
    """

    name = "wandb"

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any],
        *,
        project: str = "difflab",
        entity: str | None = None,
        mode: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.config, self.project, self.entity, self.mode = config, project, entity, mode
        self._run: Any = None
        self._artifacts: dict[str, tuple[Path, str]] = {}

    def start(self) -> None:
        import wandb  # optional dependency

        environment = self._environment()
        self._run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=self.run_dir.name,
            dir=os.environ.get("WANDB_DIR") or str(self.run_dir),
            mode=self.mode,
            config={**self.config, "git_commit": environment.get("git_commit")},
            notes=f"difflab run folder: {self.run_dir}",
            reinit="create_new",
        )
        self._run.define_metric(STEP_METRIC)
        self._run.define_metric("*", step_metric=STEP_METRIC)
        self._log_code(wandb, environment)

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        self._run.log({**{k: float(v) for k, v in metrics.items()}, STEP_METRIC: int(step)})

    def log_images(self, name: str, path: Path, *, step: int) -> None:
        import wandb

        self._run.log(
            {name: wandb.Image(str(path), caption=f"step {step}"), STEP_METRIC: int(step)}
        )

    def log_artifact(self, name: str, path: Path, *, kind: str = "artifact", step: int) -> None:
        self._artifacts[name] = (Path(path), kind)

    def finish(self, status: Literal["finished", "failed"] = "finished") -> None:
        import wandb

        try:
            for name, (path, kind) in self._artifacts.items():
                files = companions(path)
                if files:
                    artifact = wandb.Artifact(
                        _artifact_name(self.run_dir.name, name),
                        type="model" if kind == "artifact" else kind,
                    )
                    for f in files:
                        artifact.add_file(str(f))
                    self._run.log_artifact(artifact)
        finally:
            self._run.finish(exit_code=0 if status == "finished" else 1)
            self._run = None

    def _environment(self) -> dict[str, Any]:
        try:
            return json.loads((self.run_dir / ENVIRONMENT_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def _log_code(self, wandb: Any, environment: dict[str, Any]) -> None:
        """The code that ran: the git commit (in the config) and code.diff as an artifact."""
        files = [self.run_dir / f for f in (CODE_DIFF_FILE, ENVIRONMENT_FILE)]
        if not any(f.is_file() for f in files):
            return
        artifact = wandb.Artifact(
            _artifact_name(self.run_dir.name, "code"),
            type="code",
            metadata={"git_commit": environment.get("git_commit")},
        )
        for f in files:
            if f.is_file():
                artifact.add_file(str(f))
        self._run.log_artifact(artifact)


def companions(path: Path) -> list[Path]:
    """The file and its siblings with the same stem: a checkpoint is reported by its .json,
    its tensors lie in the .safetensors next to it."""
    path = Path(path)
    if not path.is_file():
        return []
    return sorted(p for p in path.parent.glob(glob.escape(path.stem) + ".*") if p.is_file())


def _artifact_name(run: str, name: str) -> str:
    """W&B artifact names allow letters, digits, '-', '_' and '.'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{run}-{name}")
