"""HTML pages of the board. Every value shown goes through `esc` (run names and config
values are user input); every URL part through `quote`."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from difflab.tracking.board.embed import read_json
from difflab.tracking.board.markup import esc
from difflab.tracking.board.report_eval import eval_outputs
from difflab.tracking.board.svg import line_chart
from difflab.tracking.config_diff import differing_keys
from difflab.tracking.paths import OutsideFolderError, read_text_inside
from difflab.tracking.run_folder import CODE_DIFF_FILE, ENVIRONMENT_FILE
from difflab.tracking.store import RunRecord, RunStore

log = logging.getLogger(__name__)

LOSS_METRICS = ("train/loss", "epoch/train_loss", "epoch/valid_loss")
_MAX_DIFF_CHARS = 200_000
_CONFIG_COLUMNS = 6
_MAX_CLASS_ROWS = 1000
MODEL_FILE = "model.json"  # io/model_file.MODEL_META (tracking may not import io)
RUN_COLUMNS = ("name", "status", "started", "dataset", "preset")


class BadQuery(ValueError):
    """A query value the page cannot use (an unknown sort column, a filter without `=`)."""


def document(title: str, body: str, *, head: str, header: str) -> str:
    """A whole HTML page; `head` and `header` are trusted markup, `title` is escaped here."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title>{head}</head><body>"
        f"<header>{header}</header><main>{body}</main></body></html>"
    )


def page(title: str, body: str) -> str:
    return document(
        f"{title} · difflab board",
        body,
        head='<link rel="stylesheet" href="/static/board.css">'
        '<script src="/static/board.js" defer></script>',
        header='<a href="/">difflab board</a>',
    )


def run_url(name: str) -> str:
    return "/run/" + quote(name, safe="")


def report_url(names: list[str]) -> str:
    """The board's download link for the report of these runs (`difflab runs report`)."""
    return "/report?" + urlencode([("run", n) for n in names])


def report_link(names: list[str]) -> str:
    return f'<p><a class="report" href="{esc(report_url(names))}" download>download report</a></p>'


def file_url(name: str, path: Path, run_dir: Path) -> str:
    return f"/file/{quote(name, safe='')}/{quote(path.relative_to(run_dir).as_posix())}"


# --- the runs table ----------------------------------------------------------------------------


def matches(params: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    """Every `key=value` filter equals the run's config value (as shown, or as JSON)."""
    for key, want in filters:
        have = params.get(key)
        if key not in params or want not in (esc(have), json.dumps(have), str(have)):
            return False
    return True


def parse_filters(text: str) -> list[tuple[str, str]]:
    """ "train.lr=0.003, model.preset=tiny" -> [("train.lr", "0.003"), ...]."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    bad = [part for part in parts if "=" not in part]
    if bad:
        raise BadQuery(f"filter {bad[0]!r}: write key=value, e.g. train.lr=0.003")
    pairs = [part.split("=", 1) for part in parts]
    return [(k.strip(), v.strip()) for k, v in pairs]


def sort_key(run: RunRecord, column: str) -> tuple:
    if column in RUN_COLUMNS:
        value = getattr(run, column)
        return (value is None, value if value is not None else 0)
    value = run.last.get(column)
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return (missing, 0.0 if missing else value)


def runs_page(store: RunStore, *, sort: str, order: str, filter_text: str) -> str:
    runs = store.list_runs()
    known = {*RUN_COLUMNS, *(m for r in runs for m in r.last)}
    if sort not in known:
        raise BadQuery(f"sort={sort!r}: not a column; use one of {', '.join(sorted(known))}")
    params = {r.name: store.parameters(r.name) for r in runs}
    filters = parse_filters(filter_text)
    runs = [r for r in runs if matches(params[r.name], filters)]
    runs.sort(key=lambda r: sort_key(r, sort), reverse=order == "desc")
    runs.sort(key=lambda r: sort_key(r, sort)[0])  # missing values last either way
    metrics = sorted({m for r in runs for m in r.last})
    varying = differing_keys([params[r.name] for r in runs])[:_CONFIG_COLUMNS]
    head = "".join(_sort_link(c, sort, order, filter_text) for c in (*RUN_COLUMNS, *metrics))
    head += "".join(f"<th>{esc(k)}</th>" for k in varying)
    rows = "".join(_run_row(r, metrics, varying, params[r.name]) for r in runs)
    form = (
        '<form method="get" action="/" class="filter"><label>filter config '
        f'<input name="filter" value="{esc(filter_text)}" '
        'placeholder="train.lr=0.003, model.preset=tiny"></label>'
        f'<input type="hidden" name="sort" value="{esc(sort)}">'
        f'<input type="hidden" name="order" value="{esc(order)}">'
        "<button>apply</button></form>"
    )
    table = (
        '<form method="get" action="/compare"><table id="runs"><thead><tr>'
        f"<th>compare</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
        "<button>compare selected (2-4)</button></form>"
    )
    count = f"<p>{len(runs)} run{'s' if len(runs) != 1 else ''}</p>"
    return page("runs", f"<h1>Runs</h1>{form}{count}{table}")


def _sort_link(column: str, sort: str, order: str, filter_text: str) -> str:
    new_order = "asc" if column != sort or order == "desc" else "desc"
    arrow = {"asc": " ▲", "desc": " ▼"}[order] if column == sort else ""
    query = urlencode({"sort": column, "order": new_order, "filter": filter_text})
    return f'<th><a href="/?{esc(query)}">{esc(column)}{arrow}</a></th>'


def _run_row(run: RunRecord, metrics: list[str], varying: list[str], params: dict) -> str:
    cells = [
        f'<td><input type="checkbox" name="run" value="{esc(run.name)}"></td>',
        f'<td><a href="{esc(run_url(run.name))}">{esc(run.name)}</a></td>',
        f'<td class="status-{esc(run.status)}">{esc(run.status)}</td>',
        f"<td>{esc(when(run.started))}</td><td>{esc(run.dataset)}</td>",
        f"<td>{esc(run.preset)}</td>",
    ]
    cells += [f'<td class="num">{esc(run.last.get(m))}</td>' for m in metrics]
    cells += [f"<td>{esc(params.get(k))}</td>" for k in varying]
    return f"<tr>{''.join(cells)}</tr>"


def when(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else None


# --- one run -----------------------------------------------------------------------------------


def charts(store: RunStore, names: list[str]) -> str:
    """Loss curves together (log scale), then one chart per other metric; a series per run."""
    metrics = sorted({m for n in names for m in store.metric_names(n)})
    losses = [m for m in LOSS_METRICS if m in metrics]
    out = []
    if losses:
        series = [(_label(n, m, names), store.metric_series(n, m)) for n in names for m in losses]
        out.append(line_chart(series, title="loss", log_y=True))
    for metric in (m for m in metrics if m not in LOSS_METRICS):
        series = [(_label(n, metric, names), store.metric_series(n, metric)) for n in names]
        out.append(line_chart(series, title=metric))
    return '<div class="charts">' + "".join(out) + "</div>"


def _label(name: str, metric: str, names: list[str]) -> str:
    return metric if len(names) == 1 else f"{name} {metric}"


def grids(store: RunStore, name: str) -> str:
    """The sample grids by step, with a slider (board.js); without JS the last one shows."""
    run_dir = store.run_dir(name)
    images = store.artifacts(name, kind="image", on_disk=True)
    if not images:
        return '<p class="empty">no sample grids</p>'
    urls = [file_url(name, a.path, run_dir) for a in images]
    labels = [f"{a.name} · step {a.step}" for a in images]
    last = len(images) - 1
    return (
        f'<figure class="grids" data-urls="{esc(json.dumps(urls))}" '
        f'data-labels="{esc(json.dumps(labels))}">'
        f'<img class="grid" src="{esc(urls[last])}" alt="sample grid">'
        f"<figcaption>{esc(labels[last])}</figcaption>"
        f'<input class="slider" type="range" min="0" max="{last}" value="{last}" '
        f'aria-label="sample grid by epoch"></figure>'
    )


def run_page(store: RunStore, name: str) -> str:
    run = store.get_run(name)
    params = store.parameters(name)
    environment = read_run_json(run.path, ENVIRONMENT_FILE)
    facts = {
        "status": run.status,
        "dataset": run.dataset,
        "preset": run.preset,
        "started": when(run.started),
        "ended": when(run.ended),
        "git commit": environment.get("git_commit"),
        "folder": str(run.path),
    }
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    return page(
        name,
        f'<h1>{esc(name)}</h1>{report_link([name])}<div class="side"><section><h2>Run</h2>'
        f'<table class="facts">{fact_rows}</table></section>'
        f"<section><h2>Samples</h2>{grids(store, name)}{class_rows(run.path, params)}"
        f"</section></div><h2>Curves</h2>{charts(store, [name])}{evaluation(run.path)}"
        f"<h2>Config</h2>{config_table(params)}<h2>Code diff</h2>{code_diff(run.path)}",
    )


def class_rows(run_dir: Path, params: dict[str, Any]) -> str:
    """Which class each grid row shows: a conditional run's grids hold one row per class,
    label k in row k + 1 (generation.class_rows). Names come from model.json's "classes"
    (written when training ends); before that the rows are numbered only."""
    meta, _ = read_json(run_dir, MODEL_FILE)
    names = meta.get("classes") if isinstance(meta, dict) else None
    names = names if isinstance(names, list) else []
    count = params.get("model.num_classes")
    n = int(count) if str(count).isdigit() else len(names)  # "10" as the run folder records
    if n == 0:
        return ""
    shown = min(n, _MAX_CLASS_ROWS)
    rows = "".join(
        f'<tr><td class="num">{k + 1}</td><td class="num">{k}</td>'
        f"<td>{esc(names[k] if k < len(names) else None)}</td></tr>"
        for k in range(shown)
    )
    cut = f'<p class="note">first {shown} of {n} classes</p>' if n > shown else ""
    where = "" if names else f" (names appear once training writes {MODEL_FILE})"
    return (
        f'<details class="classes" open><summary>one row per class, top to bottom{esc(where)}'
        f'</summary><table class="classes"><tr><th>row</th><th>label</th><th>class</th></tr>'
        f"{rows}</table>{cut}</details>"
    )


def evaluation(run_dir: Path) -> str:
    """The run's eval/ outputs (guidance curve, sampler sweep, x0_hat FID) as the report shows
    them, with a note for a file not read; nothing at all when the run has none."""
    notes: list[str] = []
    outputs = eval_outputs(run_dir, notes, name_absent=False)
    if not outputs and not notes:
        return ""
    return "<h2>Evaluation</h2>" + outputs + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def config_table(params: dict[str, Any], *, per_row: int = 3) -> str:
    """The flattened config, `per_row` key/value pairs to a row (it is long)."""
    items = list(params.items())
    rows = []
    for i in range(0, len(items), per_row):
        cells = "".join(f"<th>{esc(k)}</th><td>{esc(v)}</td>" for k, v in items[i : i + per_row])
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="config">{"".join(rows)}</table>'


def code_diff(run_dir: Path) -> str:
    """RUN/code.diff in a <pre> (cut at a limit), or a note saying why there is none."""
    try:
        text = read_text_inside(run_dir, CODE_DIFF_FILE, errors="replace")
    except OutsideFolderError as err:
        log.warning("%s", err)
        return '<p class="empty">code.diff leads outside the run folder: not shown</p>'
    except OSError:
        return '<p class="empty">no code.diff in the run folder</p>'
    if not text.strip():
        return '<p class="empty">no uncommitted changes: the code is the git commit above</p>'
    cut = "\n… (truncated)" if len(text) > _MAX_DIFF_CHARS else ""
    return f'<pre class="diff">{esc(text[:_MAX_DIFF_CHARS] + cut)}</pre>'


def read_run_json(run_dir: Path, name: str) -> dict[str, Any]:
    """A JSON object from the run folder; {} when missing, damaged or leading outside it."""
    try:
        data = json.loads(read_text_inside(run_dir, name))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- comparison --------------------------------------------------------------------------------


def compare_page(store: RunStore, names: list[str]) -> str:
    params = {n: store.parameters(n) for n in names}
    keys = differing_keys(list(params.values()))
    head = "".join(f'<th><a href="{esc(run_url(n))}">{esc(n)}</a></th>' for n in names)
    rows = "".join(
        f"<tr><th>{esc(k)}</th>"
        + "".join(f"<td>{esc(params[n].get(k))}</td>" for n in names)
        + "</tr>"
        for k in keys
    )
    last_grids = "".join(f"<div><h3>{esc(n)}</h3>{_last_grid(store, n)}</div>" for n in names)
    return page(
        "compare",
        f"<h1>Comparing {len(names)} runs</h1>{report_link(names)}"
        f'<h2>Config differences</h2><table class="config"><tr><th></th>{head}</tr>'
        f"{rows}</table><h2>Curves</h2>{charts(store, names)}"
        f'<h2>Last sample grids</h2><div class="side">{last_grids}</div>',
    )


def _last_grid(store: RunStore, name: str) -> str:
    images = store.artifacts(name, kind="image", on_disk=True)
    if not images:
        return '<p class="empty">no sample grids</p>'
    url = file_url(name, images[-1].path, store.run_dir(name))
    return f'<img class="grid" src="{esc(url)}" alt="last sample grid of {esc(name)}">'
