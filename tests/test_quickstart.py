"""`difflab quickstart`, README command (1), end to end on a tiny preset: train -> grid -> FID."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_quickstart_trains_samples_and_reports_fid_with_its_floor(tmp_path):
    cmd = [
        sys.executable, "-m", "difflab", "quickstart", "--preset", "tiny", "--no-progress",
        "--eval.n", "64", "--sample.steps", "4", "--runs-dir", str(tmp_path),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    run_dir = Path(report["run_dir"])
    assert run_dir.parent == tmp_path and (run_dir / "model.safetensors").is_file()
    assert json.loads((run_dir / "eval.json").read_text()) == report
    with Image.open(report["grid"]) as grid:  # 64 images of 28x28, 8 a row, drawn at scale 2
        assert grid.size[0] >= 8 * 28 * 2 and grid.size[1] >= 8 * 28 * 2
    result = report["eval"]
    assert result["n"] == 64 and result["steps"] == 4 and result["nfe"] == 4
    assert math.isfinite(result["fid"]) and result["fid"] > result["fid_floor"] > 0
    assert math.isfinite(result["kid"]) and result["kid_std"] >= 0
    assert report["train"]["steps"] == 4 and report["train"]["finished"]
