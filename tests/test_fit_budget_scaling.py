"""scripts/fit_budget_scaling.py recovers a known power law and solves it for the target."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_budget_scaling.py"


def load_script():
    spec = importlib.util.spec_from_file_location("fit_budget_scaling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(folder: Path, minutes: float, fid: float, floor: float, n: int = 2048) -> Path:
    folder.mkdir(parents=True)
    summary = {
        "train": {"seconds": minutes * 60, "steps": 100},
        "eval": {"fid": fid, "fid_floor": floor, "n": n},
    }
    (folder / "eval.json").write_text(json.dumps(summary))
    (folder / "config.json").write_text(json.dumps({"train": {"batch_size": 64}}))
    return folder


def test_recovers_power_law_and_solves_for_target(tmp_path, monkeypatch, capsys):
    script = load_script()
    a, b, floor = 9.0, 0.7, 0.06
    runs = [write_run(tmp_path / f"run{m}", m, floor + a * m**-b, floor) for m in (7.5, 15.0, 30.0)]
    monkeypatch.setattr(sys, "argv", ["fit", *map(str, runs), "--target", "1.5"])
    script.main()
    out = capsys.readouterr().out
    fitted = re.search(r"= ([\d.]+) \* minutes\^-([\d.]+)", out)
    assert float(fitted.group(1)) == pytest.approx(a, rel=1e-3)
    assert float(fitted.group(2)) == pytest.approx(b, rel=1e-3)
    needed = float(re.search(r"at >= ([\d,]+) minutes", out).group(1).replace(",", ""))
    assert needed == pytest.approx((a / (0.5 * floor)) ** (1 / b), abs=1.0)  # closed form


def test_eval_file_replaces_the_quickstart_fid(tmp_path, monkeypatch, capsys):
    script = load_script()
    runs = [write_run(tmp_path / f"run{m}", m, 5.0, 0.06) for m in (10.0, 40.0)]
    for run, fid in zip(runs, (2.06, 0.56)):  # excess 2.0 then 0.5: slope 1 over 4x
        (run / "eval").mkdir()
        (run / "eval" / "eta1.json").write_text(
            json.dumps({"fid": fid, "fid_floor": 0.06, "n": 2048})
        )
    monkeypatch.setattr(sys, "argv", ["fit", *map(str, runs), "--eval-file", "eval/eta1.json"])
    script.main()
    assert "minutes^-1.000" in capsys.readouterr().out


def test_refuses_runs_evaluated_at_different_n(tmp_path, monkeypatch):
    script = load_script()
    runs = [
        write_run(tmp_path / "a", 5, 2.0, 0.06),
        write_run(tmp_path / "b", 10, 1.0, 0.1, n=1000),
    ]
    monkeypatch.setattr(sys, "argv", ["fit", *map(str, runs)])
    with pytest.raises(SystemExit, match="different n"):
        script.main()


def test_missing_eval_names_the_file(tmp_path, monkeypatch):
    script = load_script()
    (tmp_path / "bare").mkdir()
    monkeypatch.setattr(sys, "argv", ["fit", str(tmp_path / "bare"), str(tmp_path / "bare")])
    with pytest.raises(SystemExit, match="eval.json: missing"):
        script.main()
