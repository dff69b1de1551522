"""`difflab runs report` and the board's download link: one self-contained HTML file.

The runs are written through the tracking API (`write_demo_run`: real run folders with metrics,
sample grids, a checkpoint), plus the eval outputs a quickstart and `difflab eval --sweep`
write, in their layouts. docs/report_example.html, made from a real tiny quickstart run, is
checked with the same walker.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import shutil
import threading
import urllib.parse
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from difflab.cli.main import main
from difflab.config import RunConfig, config_to_dict
from difflab.tracking.board.embed import ReportLimits, pick_evenly
from difflab.tracking.board.report import build_report
from difflab.tracking.board.server import make_server
from difflab.tracking.config_diff import differing_keys
from difflab.tracking.demo import draw_grid, write_demo_run
from difflab.tracking.reindex import rebuild
from difflab.tracking.store import RunStore

EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_FOLDER = "00009-<img src=x onerror=alert(1)>"
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "report_example.html"
EVAL = {  # the "eval" part of RUN/eval.json as quickstart writes it (sample_and_measure)
    "fid": 28.34899735254548,
    "fid_floor": 2.646037243193227,
    "n": 64,
    "feature_dim": 256,
    "warnings": ["n=64 <= feature dimension 256: the sample covariance is singular"],
    "kid": 0.2757688051143083,
    "kid_std": 0.008953437719992137,
    "feature_model": "fmnist_classifier",
    "feature_weights_sha256": "bdaa88ddc5c849c348b06931edd0fdc914435a7a9088d1fd51ec11060c6351d4",
    "reference": {"dataset": "fashion_mnist", "split": "test", "n": 10000},
    "sampler": "ddim",
    "steps": 4,
    "eta": 1.0,
    "nfe": 4,
}
SWEEP = [  # eval/sweep.json as evaluation.write_sweep writes it
    {"sampler": s, "eta": e, "steps": k, "nfe": k, "fid": f, "fid_floor": 2.6, "n": 64,
     "sampling_seconds": 1.0}
    for s, e, k, f in (("ddim", 0.0, 4, 40.5), ("ddim", 0.0, 8, 31.25), ("ddpm", None, 8, 35.5))
]  # fmt: skip
FINAL_GRID_BYTES = 40_000  # noise PNG: incompressible, so over a 16 KiB cap


class Walker(HTMLParser):
    """Walks every tag: end tags must close the open element; collects attributes and rows."""

    VOID = {"meta", "link", "img", "input", "br", "hr", "source", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[tuple[str | None, list[str]]] = []  # (tr class, cell texts)
        self._row: tuple[str | None, list[str]] | None = None
        self._cell: list[str] | None = None
        self.styles: list[str] = []  # text of <style> elements

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self._row = (dict(attrs).get("class"), [])
        elif tag in ("th", "td"):
            self._cell = []
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):  # <line .../> in SVG
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag in ("th", "td") and self._row is not None and self._cell is not None:
            self._row[1].append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style":
            self.styles.append(data)
        if self._cell is not None:
            self._cell.append(data)


def walk(html: str) -> Walker:
    walker = Walker()
    walker.feed(html)
    walker.close()
    assert walker.stack == [], f"unclosed: {walker.stack}"
    return walker


def rows_by_label(walker: Walker) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for _, cells in walker.rows if cells}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    config = config_to_dict(RunConfig())
    alpha = write_demo_run(runs_dir, config, name="alpha", epochs=5, steps_per_epoch=4)
    final = alpha / "samples" / "final.png"
    noise = random.Random(0).randbytes(200 * 200)
    Image.frombytes("L", (200, 200), noise).save(final)
    report = {"run_dir": str(alpha), "grid": str(final), "train": {}, "eval": EVAL}
    (alpha / "eval.json").write_text(json.dumps(report))
    (alpha / "eval").mkdir()
    (alpha / "eval" / "sweep.json").write_text(json.dumps(SWEEP))
    guidance = [{"guidance": w, "fid": 30.0 - w} for w in (0.0, 1.5, 3.0)]
    (alpha / "eval" / "guidance.json").write_text(json.dumps(guidance))
    config["train"]["lr"] = 0.01
    config["name"] = EVIL  # a config value is user input
    evil = write_demo_run(runs_dir, config, name="evil", epochs=2, steps_per_epoch=4, seed=2)
    (evil / "code.diff").write_text(f"+print('{EVIL}')\n")
    (evil / "eval").mkdir()
    (evil / "eval" / "sweep.json").write_text(json.dumps([{**SWEEP[0], "sampler": EVIL}]))
    shutil.copytree(evil, runs_dir / HOSTILE_FOLDER)  # a folder renamed by hand
    with RunStore(runs_dir) as store:
        rebuild(store)
    return runs_dir


def report_cli(runs_dir: Path, out: Path, *argv: str) -> str:
    """The file `difflab runs report ... --json` writes (its JSON result goes to stdout)."""
    args = ["runs", "report", *argv, "--runs-dir", str(runs_dir), "--out", str(out), "--json"]
    assert main(args) == 0
    return out.read_text(encoding="utf-8")


def test_report_of_a_run_holds_its_metrics_and_grids(runs, tmp_path, capsys):
    html = report_cli(runs, tmp_path / "r.html", "1", "--max-grids", "3")
    result = json.loads(capsys.readouterr().out)
    assert result["runs"] == ["00001-alpha"] and result["left_out"] == []
    walker = walk(html)
    rows = rows_by_label(walker)
    assert rows["FID"] == [f"{EVAL['fid']:.4g}"]
    assert rows["real-data floor (FID of real images, same n)"] == [f"{EVAL['fid_floor']:.4g}"]
    assert rows["n (samples measured)"] == ["64"]
    assert rows["feature model"][0].startswith("fmnist_classifier (sha256 bdaa88ddc5c8")
    with RunStore(runs) as store:
        last_fid = store.metric_series("00001-alpha", "fid")[-1][1]
    assert rows["fid"] == [f"{last_fid:.4g}"]  # last logged value, from metrics.jsonl
    # 5 epochs, 3 grids: epochs 1, 3, 5 (evenly spaced, the last in), then the final grid
    samples = runs / "00001-alpha" / "samples"
    want = [samples / f"epoch_{e:03d}.png" for e in (1, 3, 5)] + [samples / "final.png"]
    uris = [a["src"] for tag, a in walker.tags if tag == "img"]
    assert all(u.startswith("data:image/png;base64,") for u in uris)
    assert [base64.b64decode(u.split(",", 1)[1]) for u in uris] == [p.read_bytes() for p in want]
    assert html.count('class="series"') >= 2  # loss and FID curves as inline SVG


def test_report_fetches_nothing(runs, tmp_path):
    html = report_cli(runs, tmp_path / "r.html", "1", "2")
    walker = walk(html)
    for tag, attrs in walker.tags:
        for key in ("src", "href", "action", "srcset", "poster", "data"):
            value = (attrs.get(key) or "").strip()
            if key in attrs:
                assert value.startswith(("data:image/", "#")), (tag, key, value[:60])
                assert not value.startswith("//")
        assert tag not in ("script", "link", "iframe", "object", "embed", "base", "form")
    style = "".join(walker.styles).lower()  # code.diff may hold "url(" as (escaped) text
    assert style and "url(" not in style and "@import" not in style
    assert not any("url(" in (a.get("style") or "") for _, a in walker.tags)
    for needle in ('src="http', 'href="http', 'src="//', 'href="//', "<script"):
        assert needle not in html.lower()
    assert "Content-Security-Policy" in html and "default-src &#x27;none&#x27;" in html


def test_names_config_values_and_files_are_escaped(runs, tmp_path):
    html = report_cli(runs, tmp_path / "r.html", "2", "9")
    walk(html)
    assert EVIL not in html and "<img src=x" not in html
    assert EVIL_ESCAPED in html  # the config value, the code diff and the sweep's sampler
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the hand-renamed run folder
    assert html.count(EVIL_ESCAPED) >= 3 * 2  # each of the two runs: config, diff, sweep


def test_comparison_highlights_exactly_the_differing_keys(runs, tmp_path):
    html = report_cli(runs, tmp_path / "r.html", "1", "2")
    highlighted = [cells[0] for cls, cells in walk(html).rows if cls == "differs"]
    with RunStore(runs) as store:
        want = differing_keys([store.parameters("00001-alpha"), store.parameters("00002-evil")])
    assert {"train.lr", "name"} <= set(want)
    assert highlighted == want  # sorted, each once


def test_board_download_is_the_cli_file(runs, tmp_path):
    server = make_server(runs, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def get(path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    try:
        run_page = get("/run/00001-alpha")[2].decode()
        assert 'href="/report?run=00001-alpha"' in run_page
        compare = get("/compare?run=00001-alpha&run=00002-evil")[2].decode()
        link = "/report?run=00001-alpha&amp;run=00002-evil"
        assert f'href="{link}"' in compare
        for refs, path in (
            (["1"], "/report?run=00001-alpha"),
            (["1", "2"], link.replace("&amp;", "&")),
        ):
            status, headers, body = get(path)
            assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
            assert headers["Content-Disposition"].startswith('attachment; filename="report-')
            assert "img-src data:" in headers["Content-Security-Policy"]
            cli = report_cli(runs, tmp_path / "cli.html", *refs)
            assert body == cli.encode("utf-8")
        hostile = urllib.parse.quote(HOSTILE_FOLDER, safe="")
        status, headers, _ = get(f"/report?run={hostile}")
        assert status == 200 and '"report-00009-_img_src_x_onerror_alert_1_.html"' in str(
            headers["Content-Disposition"]
        )
        assert get("/report")[0] == 400
        assert get("/report?" + "&".join(f"run={i}" for i in range(1, 6)))[0] == 400
        assert get("/report?run=nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_grids_over_the_size_cap_are_left_out_with_a_note(runs, tmp_path, capsys):
    html = report_cli(runs, tmp_path / "r.html", "1", "--max-image-kb", "16")
    result = json.loads(capsys.readouterr().out)
    assert (runs / "00001-alpha" / "samples" / "final.png").stat().st_size > 16 * 1024
    note = "is over the 16 KiB cap per image: left out"
    [line] = result["left_out"]
    assert line.startswith("00001-alpha: samples/final.png (") and note in line
    assert line.split(": ", 1)[1] in html  # visible in the page, not only in the log
    uris = [a["src"] for tag, a in walk(html).tags if tag == "img"]
    assert len(uris) == 5  # the five epoch grids are small enough


def test_missing_eval_outputs_are_named_not_errors(runs):
    with RunStore(runs) as store:
        html = build_report(store, ["00002-evil"]).html
    walk(html)
    assert "no final evaluation" in html
    assert "not in this run: eval/guidance.json" in html and "Sampler sweep" in html
    with RunStore(runs) as store:
        alpha = build_report(store, ["00001-alpha"]).html
    assert "Guidance curve (eval/guidance.json)" in alpha and "FID by guidance" in alpha


def test_files_leading_out_of_the_run_folder_are_not_read(tmp_path):
    runs_dir, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    run = write_demo_run(runs_dir, config_to_dict(RunConfig()), name="sym", epochs=2)
    (outside / "eval.json").write_text(json.dumps({"eval": {**EVAL, "fid": 1234.5}}))
    (outside / "code.diff").write_text("SECRET DIFF\n")
    draw_grid(9, 9).save(outside / "grid.png")
    for name, target in (("eval.json", "eval.json"), ("code.diff", "code.diff")):
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(outside / target)
    (run / "samples" / "epoch_001.png").unlink()
    (run / "samples" / "epoch_001.png").symlink_to(outside / "grid.png")
    with RunStore(runs_dir) as store:
        rebuild(store)
        report = build_report(store, ["00001-sym"])
    assert "1234" not in report.html and "SECRET" not in report.html
    assert "eval.json leads outside the run folder: not read" in report.html
    assert "code.diff leads outside the run folder" in report.html
    grid = (outside / "grid.png").read_bytes()
    uris = [a["src"] for tag, a in walk(report.html).tags if tag == "img"]
    assert len(uris) == 1 and base64.b64encode(grid).decode() not in report.html


def test_a_run_kept_outside_the_runs_folder_is_refused(tmp_path):
    runs_dir = tmp_path / "runs"
    write_demo_run(runs_dir, config_to_dict(RunConfig()), name="in", epochs=1)
    elsewhere = write_demo_run(tmp_path / "else", config_to_dict(RunConfig()), name="out")
    with RunStore(runs_dir) as store:
        store.register_run(elsewhere, status="finished")
        with pytest.raises(ValueError, match="outside the runs folder"):
            build_report(store, ["00001-in", elsewhere.name])


def test_limits_name_their_flag():
    with pytest.raises(ValueError, match="--max-grids"):
        ReportLimits(max_grids=-1)
    with pytest.raises(ValueError, match="--max-image-kb"):
        ReportLimits(max_image_bytes=0)


@pytest.mark.parametrize("n", range(0, 13))
def test_pick_evenly_matches_rounded_even_spacing(n):
    items = list(range(n))
    for k in range(0, 15):
        got = pick_evenly(items, k)
        if k >= n:
            assert got == items
        elif k == 0:
            assert got == []
        elif k == 1:
            assert got == [n - 1]
        else:  # round half up of i (n - 1) / (k - 1), in exact fractions
            want = [int(Fraction(i * (n - 1), k - 1) + Fraction(1, 2)) for i in range(k)]
            assert got == want and got[0] == 0 and got[-1] == n - 1 and len(set(got)) == k


def test_committed_example_is_self_contained():
    html = EXAMPLE.read_text(encoding="utf-8")
    assert EXAMPLE.stat().st_size < 1_500_000
    walker = walk(html)
    srcs = [a.get("src") or a.get("href") or "" for _, a in walker.tags]
    assert all(s.startswith(("data:image/", "#")) for s in srcs if s)
    assert any(s.startswith("data:image/png;base64,") for s in srcs)
    rows = rows_by_label(walker)
    assert float(rows["FID"][0]) > float(rows["real-data floor (FID of real images, same n)"][0])
