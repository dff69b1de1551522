"""The board in a real headless browser (Debian's chromium via Playwright).

Fails, with the reason, when chromium or playwright is missing: CI installs both
(scripts/install_test_deps.sh), and a browser test that silently skips proves nothing.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from difflab.config import RunConfig, config_to_dict
from difflab.tracking.board.server import make_server
from difflab.tracking.demo import write_demo_run

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: run scripts/install_test_deps.sh "
            "(apt-get install chromium) to run the board's browser test"
        )
    return path


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    config = config_to_dict(RunConfig())
    for k, lr in enumerate((0.003, 0.01, 0.001)):
        config["train"]["lr"] = lr
        write_demo_run(runs_dir, config, name=f"lr{lr}", epochs=4, steps_per_epoch=15, seed=k)
    config["name"] = "<script>alert(1)</script>"
    write_demo_run(runs_dir, config, name="evil", epochs=1, steps_per_epoch=3)
    server = make_server(runs_dir, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.problems = []  # script errors, CSP violations, alert() calls
    page.on("pageerror", lambda err: page.problems.append(f"error: {err}"))
    page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.goto(url, wait_until="load")
    return page


def poll(read, *, timeout: float = 5.0):
    """`read()` until truthy (page.wait_for_function would eval a string: the CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def images_loaded(page) -> list[int]:
    return page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"
    )


def test_runs_table_sorts_filters_and_compares(browser, base_url, tmp_path):
    page = open_page(browser, base_url + "/")
    assert page.locator("#runs tbody tr").count() == 4
    page.click("text=fid")  # sort by FID, ascending
    fids = [
        float(t) for t in page.locator("#runs tbody tr td.num:nth-of-type(8)").all_inner_texts()
    ]
    assert fids == sorted(fids)
    page.fill("input[name=filter]", "train.lr=0.001")  # lr0.001 and evil (same config)
    with page.expect_navigation():  # the form reloads the page: read the new one, not the old
        page.click("text=apply")
    names = page.locator("#runs tbody tr td:nth-of-type(2)").all_inner_texts()
    assert sorted(names) == ["00003-lr0.001", "00004-evil"]
    page.goto(base_url + "/")
    page.check("input[value='00001-lr0.003']")
    page.check("input[value='00002-lr0.01']")
    with page.expect_navigation():
        page.click("text=compare selected")
    assert page.url.startswith(base_url + "/compare?")
    assert page.locator("svg.chart path.series").count() >= 4  # two runs x (loss + fid)
    assert len(images_loaded(page)) == 2 and all(w > 0 for w in images_loaded(page))
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert page.problems == []


def test_run_page_curves_grids_slider_and_escaping(browser, base_url, tmp_path):
    page = open_page(browser, base_url + "/run/00001-lr0.003")
    assert page.locator("svg.chart").count() >= 2
    assert page.locator("svg.chart path.series").count() >= 3  # train, valid loss; fid
    assert images_loaded(page)[0] == 112  # 4 x 28-pixel tiles
    grid = page.locator("figure.grids img")
    last = grid.get_attribute("src")
    page.locator("input.slider").fill("0")  # the slider swaps in the first epoch's grid
    assert grid.get_attribute("src").endswith("epoch_001.png") and last.endswith("epoch_004.png")
    assert poll(lambda: grid.evaluate("img => img.complete ? img.naturalWidth : 0")) == 112
    assert "step" in page.locator("figure.grids figcaption").inner_text()
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    assert (tmp_path / "run.png").stat().st_size > 10_000
    evil = open_page(browser, base_url + "/run/00004-evil")
    assert "<script>alert(1)</script>" in evil.locator("table.config").inner_text()  # as text
    assert page.problems == [] and evil.problems == []


def test_downloaded_report_opens_offline_with_everything_in_it(browser, base_url, tmp_path):
    # the comparison page's "download report" link, saved, then opened from the file alone
    board = open_page(browser, base_url + "/compare?run=00001-lr0.003&run=00002-lr0.01")
    with board.expect_download() as download:
        board.click("text=download report")
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "report-00001-lr0.003-and-1.html"
    report = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    report.on("request", lambda r: requests.append(r.url))
    report.on("console", lambda m: m.type == "error" and requests.append(f"error: {m.text}"))
    report.goto(saved.as_uri(), wait_until="load")
    assert requests[0] == saved.as_uri()  # then data: URIs only, no CSP violation logged
    assert all(u.startswith("data:") for u in requests[1:]), requests
    widths = images_loaded(report)
    assert len(widths) == 2 * 4 and all(w == 112 for w in widths)  # 4 epoch grids per run
    assert report.locator("svg.chart path.series").count() >= 4
    assert report.locator("tr.differs").all_inner_texts()[0].startswith("train.lr")
    report.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert board.problems == []
