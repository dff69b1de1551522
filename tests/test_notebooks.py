"""The notebooks in notebooks/ run top to bottom, in fast mode (DIFFLAB_NOTEBOOK_FAST=1), each in
its own empty working folder, on a kernel that is this interpreter with this difflab."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[dev]' (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[dev]' (nbclient)")
pytest.importorskip("ipykernel", reason="pip install -e '.[dev]' (ipykernel)")

import difflab  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = (
    "01_forward_process",
    "02_train_and_sample",
    "03_measure",
    "04_track_and_compare",
    "05_conditional_generation",
)
PROBE = "import sys, difflab; print(sys.executable); print(difflab.__file__)"


def test_the_notebooks_are_the_ones_tested():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == list(NOTEBOOKS)


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernelspec that starts this interpreter, found first through JUPYTER_PATH; the kernel
    inherits the environment, with this difflab's source folder first on PYTHONPATH."""
    spec = tmp_path / "jupyter" / "kernels" / "difflab-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "difflab test", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    source = str(Path(difflab.__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("DIFFLAB_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return "difflab-test"


def outputs_of(cell) -> list[str]:
    """The MIME types (or 'stream') of a code cell's outputs."""
    kinds = []
    for output in cell.get("outputs", []):
        kinds.extend(output.get("data", {}) or [output["output_type"]])
    return kinds


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_in_fast_mode(name, kernel_name, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel_name, timeout=600, resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError (with the cell and traceback) on any error

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    probe = "".join(o.get("text", "") for o in code[-1].outputs).split()
    assert probe == [sys.executable, difflab.__file__]  # this interpreter, this checkout
    figures = sum(outputs_of(cell).count("image/png") for cell in code)
    assert figures >= 1, f"{name}: no figure; the notebooks are about looking"


def test_training_cell_shows_a_live_progress_bar_and_loss_plot(kernel_name, tmp_path):
    """In a real kernel NotebookProgressCB and LivePlotCB draw into the cell that calls fit."""
    cell = "\n".join([
        "from test_learner import tiny_learner",
        "from difflab.training.callbacks import LivePlotCB, NotebookProgressCB, in_notebook",
        "assert in_notebook()",
        "tiny_learner([NotebookProgressCB(every=2), LivePlotCB(every=1)], n=96).fit(2)",
    ])  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    tests = str(Path(__file__).resolve().parent)
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {tests!r})"))
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel_name, timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = nb.cells[1].outputs
    # one output per callback, updated in place (display_data replaced, not appended)
    assert [o.output_type for o in outputs] == ["display_data", "display_data"]
    bar, plot = (o.data for o in outputs)
    assert '<progress value="1.0000"' in bar["text/html"] and "step 24/24" in bar["text/plain"]
    assert plot["image/png"]  # the last frame of the loss plot
