"""The board's run page shows a conditional run's guidance curve (eval/guidance.json) and
which class each grid row holds (model.json), read from the run folder and escaped."""

from __future__ import annotations

import json
import math
import threading
import urllib.request
from html.parser import HTMLParser

import pytest

from difflab.config import RunConfig, config_to_dict
from difflab.tracking.board.server import make_server
from difflab.tracking.demo import write_demo_run

EVIL = "<script>alert(1)</script>"
CLASSES = ["T-shirt/top", EVIL, "sneaker"]
GUIDANCE = [  # eval/guidance.json as evaluation.guidance_sweep writes it
    {"guidance": 0.0, "fid": 41.27, "fid_floor": 0.512, "class_accuracy": 0.4375,
     "nfe": 50, "n": 256, "sampling_seconds": 12.5},
    {"guidance": 1.5, "fid": 18.06, "fid_floor": 0.512, "class_accuracy": 0.8125,
     "nfe": 100, "n": 256, "sampling_seconds": 24.75},
    {"guidance": 4.0, "fid": 29.93, "fid_floor": 0.512, "class_accuracy": 0.9688,
     "nfe": 100, "n": 256, "sampling_seconds": 25.1},
]  # fmt: skip


class Page(HTMLParser):
    """Tables by class (their rows of cell texts), SVG charts by label, headings."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.charts: dict[str, list[str]] = {}  # aria-label -> the d of each series path
        self.headings: list[str] = []
        self._table: str | None = None
        self._chart: str | None = None
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("class") or ""
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "svg":
            self._chart = a.get("aria-label")
            self.charts[self._chart] = []
        elif tag == "path" and self._chart is not None and a.get("class") == "series":
            self.charts[self._chart].append(a["d"])
        elif tag in ("h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "svg":
            self._chart = None
        elif tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data: str) -> None:
        for text in (self._cell, self._heading):
            if text is not None:
                text.append(data)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    config = config_to_dict(RunConfig())
    plain = write_demo_run(runs_dir, config, name="plain", epochs=2, steps_per_epoch=3)
    config["model"]["num_classes"] = str(len(CLASSES))
    guided = write_demo_run(runs_dir, config, name="guided", epochs=2, steps_per_epoch=3)
    (guided / "eval").mkdir()
    (guided / "eval" / "guidance.json").write_text(json.dumps(GUIDANCE))
    (guided / "model.json").write_text(json.dumps({"classes": CLASSES}))
    training = write_demo_run(runs_dir, config, name="training", epochs=1, steps_per_epoch=3)
    (training / "eval").mkdir()
    for run_dir in (plain, guided, training):  # not this checkout's diff (this file in it)
        (run_dir / "code.diff").write_text("")
    outside = runs_dir.parent / f"{runs_dir.name}-secret.json"
    outside.write_text(json.dumps([{"guidance": 7.0, "fid": 999.5}]))
    (training / "eval" / "guidance.json").symlink_to(outside)
    server = make_server(runs_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, {"plain": plain.name, "guided": guided.name, "training": training.name}
    server.shutdown()
    server.server_close()


def run_page(board, key: str) -> tuple[str, Page]:
    server, names = board
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/run/{urllib.request.quote(names[key], safe='')}"
    with urllib.request.urlopen(url, timeout=10) as response:
        html = response.read().decode()
    page = Page()
    page.feed(html)
    page.close()
    return html, page


def close_4g(cell: str, value: float) -> bool:
    """The board shows floats to 4 significant digits (esc)."""
    return math.isclose(float(cell), value, rel_tol=5e-4)


def test_guidance_curve_and_table_show_the_file(board):
    _, page = run_page(board, "guided")
    assert "Guidance curve (eval/guidance.json)" in page.headings
    header, *rows = page.tables["rows"]
    assert header == list(GUIDANCE[0])  # every column, sampling time included
    assert len(rows) == len(GUIDANCE)
    for cells, want in zip(rows, GUIDANCE, strict=True):
        assert all(close_4g(c, v) for c, v in zip(cells, want.values(), strict=True)), cells
    for title in ("FID by guidance", "class accuracy by guidance"):
        (path,) = page.charts[title]  # one series, a point per guidance scale
        assert path.count("M") == 1 and path.count("L") == len(GUIDANCE) - 1


def test_grid_rows_are_named_by_class_and_escaped(board):
    html, page = run_page(board, "guided")
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # only the board's own /static/board.js
    header, *rows = page.tables["classes"]
    assert header == ["row", "label", "class"]
    assert rows == [[str(k + 1), str(k), name] for k, name in enumerate(CLASSES)]


def test_a_run_without_eval_outputs_or_classes_shows_neither(board):
    html, page = run_page(board, "plain")
    assert "Evaluation" not in page.headings and "rows" not in page.tables
    assert "classes" not in page.tables and "by guidance" not in html
    assert "Samples" in page.headings  # the page itself is whole


def test_a_run_still_training_numbers_rows_and_reads_nothing_outside(board):
    html, page = run_page(board, "training")
    header, *rows = page.tables["classes"]
    assert rows == [[str(k + 1), str(k), "-"] for k in range(len(CLASSES))]
    assert "names appear once training writes model.json" in html
    assert "999.5" not in html and "rows" not in page.tables  # the symlinked file is not read
    assert "eval/guidance.json leads outside the run folder: not read" in html
