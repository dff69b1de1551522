"""One self-contained HTML file for a run or a comparison: `difflab runs report` and the board's
"download report" link (the same bytes for the same runs and limits).

It opens offline with nothing beside it: curves are inline SVG (board/svg.py, through the
board's `charts`), sample grids are data: URIs (at most `max_grids` per run, evenly spaced,
each under `max_image_bytes`; a grid left out is named in a visible note), there is no script,
and a Content-Security-Policy lets the page fetch nothing. Every user-controlled string goes
through the board's `esc`; files are read only through `paths.inside`, and only for runs whose
folder is inside the runs folder. No local paths are written (the file is meant to be sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflab.tracking.board import pages
from difflab.tracking.board.embed import ReportLimits, image_data_uri, pick_evenly, read_json
from difflab.tracking.board.markup import esc
from difflab.tracking.board.pages import charts, config_table
from difflab.tracking.board.report_eval import eval_outputs, final_metrics_table
from difflab.tracking.board.static import CSS
from difflab.tracking.config_diff import differing_keys
from difflab.tracking.paths import is_inside
from difflab.tracking.run_folder import ENVIRONMENT_FILE
from difflab.tracking.store import RunStore

# Nothing may be fetched: images are data: URIs, styles inline, scripts none at all.
REPORT_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)
REPORT_CSS = CSS + (
    "header span { color: #fff; font-weight: bold; }\n"
    "tr.differs th, tr.differs td { background: #fff1b8; }\n"
    "section.run { border-top: 2px solid #23395d; margin-top: 24px; }\n"
    ".grids-row { display: flex; flex-wrap: wrap; gap: 10px; }\n"
    "figure.grid { margin: 0; } figure.grid img.grid { width: 224px; }\n"
    "details { margin: 8px 0; } summary { cursor: pointer; }\n"
)
EVAL_FILE = "eval.json"


@dataclass(frozen=True)
class Report:
    html: str
    left_out: tuple[str, ...]  # one line per file not embedded ("RUN: samples/x.png ... ")


def report_runs(store: RunStore, names: list[str]) -> list[str]:
    """`names` (deduplicated, in order), refused (ValueError) unless each run's folder is
    inside the runs folder: a report reads files there only."""
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError("a report needs at least one run: difflab runs report RUN [RUN ...]")
    for name in names:
        if not is_inside(store.runs_dir, store.run_dir(name)):
            raise ValueError(
                f"run {name!r} is kept outside the runs folder {store.runs_dir}: a report reads "
                "files inside it only; move the run folder there and run `difflab runs reindex`"
            )
    return names


def build_report(store: RunStore, names: list[str], limits: ReportLimits | None = None) -> Report:
    """The report of `names` (one run, or a comparison of several); default limits if None."""
    limits = limits or ReportLimits()
    names = report_runs(store, names)
    left_out: list[str] = []
    evals, sections = {}, []
    for i, name in enumerate(names):
        notes: list[str] = []
        data, note = read_json(store.run_dir(name), EVAL_FILE)
        notes += [note] if note else []
        evals[name] = _eval_result(data)
        sections.append(_run_section(store, name, i, limits, data, notes))
        left_out += [f"{name}: {n}" for n in notes]
    records = {n: store.get_run(n) for n in names}
    title = names[0] if len(names) == 1 else f"{len(names)} runs"
    contents = "".join(f'<li><a href="#run-{i}">{esc(n)}</a></li>' for i, n in enumerate(names))
    body = (
        f"<h1>{esc(title)}</h1><ul>{contents}</ul>"
        f"<h2>Final metrics</h2>{final_metrics_table(names, evals, records)}"
        f"<h2>Curves</h2>{charts(store, names)}"
        f"<h2>Config</h2>{_config(store, names)}{''.join(sections)}"
    )
    head = (
        f'<meta http-equiv="Content-Security-Policy" content="{esc(REPORT_CSP)}">'
        f'<meta name="generator" content="difflab runs report"><style>{REPORT_CSS}</style>'
    )
    html = pages.document(
        f"{title} · difflab report", body, head=head, header="<span>difflab report</span>"
    )
    return Report(html, tuple(left_out))


# --- config ------------------------------------------------------------------------------------


def _config(store: RunStore, names: list[str]) -> str:
    """One run: its config. Several: every key, a column per run, differing rows highlighted."""
    params = {n: store.parameters(n) for n in names}
    if len(names) == 1:
        return config_table(params[names[0]])
    differing = set(differing_keys(list(params.values())))
    keys = sorted({k for p in params.values() for k in p})
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    mark = {True: ' class="differs"', False: ""}
    rows = "".join(
        f"<tr{mark[k in differing]}><th>{esc(k)}</th>"
        + "".join(f"<td>{esc(params[n].get(k))}</td>" for n in names)
        + "</tr>"
        for k in keys
    )
    summary = (
        f"<p>{len(differing)} of {len(keys)} keys differ (highlighted): "
        f"{esc(', '.join(sorted(differing)) or 'none')}</p>"
    )
    return f'{summary}<table class="config compare"><tr><th></th>{head}</tr>{rows}</table>'


# --- one run -----------------------------------------------------------------------------------


def _run_section(
    store: RunStore, name: str, index: int, limits: ReportLimits, eval_data: Any, notes: list[str]
) -> str:
    """Facts, sample grids, eval outputs (sweep, guidance, x0 FID), code; `notes` collects
    what was left out."""
    run = store.get_run(name)
    run_dir = store.run_dir(name)
    env = pages.read_run_json(run_dir, ENVIRONMENT_FILE)
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    facts = {
        "status": run.status,
        "dataset": run.dataset,
        "preset": run.preset,
        "started": pages.when(run.started),
        "ended": pages.when(run.ended),
        "git commit": env.get("git_commit"),
        "uncommitted changes": env.get("git_dirty"),
        "python": env.get("python"),
        **{p: packages.get(p) for p in ("difflab", "torch") if p in packages},
    }
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    grids = _grids(store, name, run_dir, limits, _final_grid(run_dir, eval_data), notes)
    outputs = eval_outputs(run_dir, notes)
    commit = env.get("git_commit") or "unknown commit"
    return (
        f'<section class="run" id="run-{index}"><h2>{esc(name)}</h2>'
        f'<table class="facts">{rows}</table><h3>Sample grids</h3>{grids}{outputs}'
        f"<h3>Code</h3><details><summary>git commit {esc(commit)} and the uncommitted "
        f"changes (code.diff)</summary>{pages.code_diff(run_dir)}</details>"
        f"{_notes(notes)}</section>"
    )


def _grids(
    store: RunStore,
    name: str,
    run_dir: Path,
    limits: ReportLimits,
    final: Path | None,
    notes: list[str],
) -> str:
    """Up to `max_grids` of the run's sample grids (evenly spaced, the last in), then the
    grid its final evaluation drew (eval.json's "grid"), each a data: URI."""
    images = store.artifacts(name, kind="image", on_disk=True)
    chosen = pick_evenly(images, limits.max_grids)
    items = [(f"{a.path.stem} · step {a.step}", a.path) for a in chosen]
    if final is not None and final not in {a.path for a in images}:
        items.append(("final evaluation grid", final))
    figures = []
    for label, path in items:
        uri, note = image_data_uri(run_dir, path, max_bytes=limits.max_image_bytes)
        if uri is None:
            notes.append(str(note))
            figures.append(f'<p class="note">{esc(label)}: {esc(note)}</p>')
            continue
        figures.append(
            f'<figure class="grid"><img class="grid" src="{esc(uri)}" alt="{esc(label)}">'
            f"<figcaption>{esc(label)}</figcaption></figure>"
        )
    if not figures:
        return '<p class="empty">no sample grids</p>'
    shown = f"<p>{len(chosen)} of {len(images)} logged grids (evenly spaced over the run)</p>"
    return shown + f'<div class="grids-row">{"".join(figures)}</div>'


def _final_grid(run_dir: Path, data: Any) -> Path | None:
    """eval.json's "grid" (written absolute by quickstart) mapped into this run folder."""
    if not isinstance(data, dict) or not isinstance(data.get("grid"), str):
        return None
    grid, origin = Path(data["grid"]), data.get("run_dir")
    if grid.is_absolute():
        if not isinstance(origin, str) or not grid.is_relative_to(origin):
            return None
        grid = grid.relative_to(origin)
    return run_dir / grid


def _eval_result(data: Any) -> dict[str, Any]:
    """The final evaluation: eval.json's "eval" (quickstart), or eval.json itself when it is
    one `difflab eval --json` result; {} when there is none."""
    if not isinstance(data, dict):
        return {}
    result = data.get("eval", data)
    return result if isinstance(result, dict) and "fid" in result else {}


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<h3>Left out of this report</h3><ul class="note">{items}</ul>'
