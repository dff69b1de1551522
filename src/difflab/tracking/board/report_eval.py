"""The evaluation parts of a report: final metrics with their floors, n and feature model
(RUN/eval.json and metrics.jsonl), and the eval/ outputs a run may have (sampler sweep,
guidance curve, FID of x0_hat across steps) as a chart and a table each. Absent files are
named, not errors: a run need not have been swept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from difflab.tracking.board.embed import read_json
from difflab.tracking.board.markup import esc
from difflab.tracking.board.svg import Series, line_chart
from difflab.tracking.store import RunRecord

_MAX_ROWS, _MAX_COLUMNS = 200, 16
_GUIDANCE_KEYS = ("guidance", "guidance_scale", "scale", "w")


def _kid(ev: dict[str, Any]) -> str | None:
    kid, std = ev.get("kid"), ev.get("kid_std")
    if not isinstance(kid, int | float):
        return None
    return f"{kid:.4g} ± {std:.2g}" if isinstance(std, int | float) else f"{kid:.4g}"


def _feature_model(ev: dict[str, Any]) -> str | None:
    name, sha = ev.get("feature_model"), ev.get("feature_weights_sha256")
    if name is None:
        return None
    return f"{name} (sha256 {str(sha)[:12]}…)" if sha else str(name)


def _reference(ev: dict[str, Any]) -> str | None:
    ref = ev.get("reference")
    if not isinstance(ref, dict):
        return None
    return f"{ref.get('dataset')} {ref.get('split')}, n={ref.get('n')}"


def _sampler(ev: dict[str, Any]) -> str | None:
    if ev.get("sampler") is None:
        return None
    eta = "" if ev.get("eta") is None else f", eta {ev['eta']}"
    return f"{ev['sampler']}, {ev.get('steps')} steps, {ev.get('nfe')} NFE{eta}"


def _warnings(ev: dict[str, Any]) -> str | None:
    warnings = ev.get("warnings")
    return "; ".join(map(str, warnings)) if isinstance(warnings, list) and warnings else None


FINAL_ROWS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("FID", lambda ev: ev.get("fid")),
    ("real-data floor (FID of real images, same n)", lambda ev: ev.get("fid_floor")),
    ("KID ± std", _kid),
    ("n (samples measured)", lambda ev: ev.get("n")),
    ("feature model", _feature_model),
    ("reference statistics", _reference),
    ("sampled with", _sampler),
    ("warnings", _warnings),
)


def final_metrics_table(
    names: list[str], evals: dict[str, dict[str, Any]], records: dict[str, RunRecord]
) -> str:
    """A column per run: the final evaluation (eval.json), then the last logged values."""
    head = "<tr><th></th>" + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>"
    rows = []
    if any(evals.values()):
        rows.append(f'<tr><th colspan="{len(names) + 1}">final evaluation (eval.json)</th></tr>')
        rows += [_row(label, [get(evals[n]) if evals[n] else None for n in names])
                 for label, get in FINAL_ROWS]  # fmt: skip
    metrics = sorted({m for n in names for m in records[n].last})
    if metrics:
        rows.append(
            f'<tr><th colspan="{len(names) + 1}">last logged value (metrics.jsonl)</th></tr>'
        )
        rows += [_row(m, [records[n].last.get(m) for n in names]) for m in metrics]
    note = (
        ""
        if any(evals.values())
        else '<p class="empty">no final evaluation (RUN/eval.json, written by '
        "`difflab quickstart`) in these runs</p>"
    )
    return f'{note}<table class="metrics">{head}{"".join(rows)}</table>'


def _row(label: str, values: list[Any]) -> str:
    cells = "".join(f'<td class="num">{esc(v)}</td>' for v in values)
    return f"<tr><th>{esc(label)}</th>{cells}</tr>"


# --- eval/ outputs -----------------------------------------------------------------------------


def eval_outputs(run_dir: Path, notes: list[str], *, name_absent: bool = True) -> str:
    """Sampler sweep, guidance curve and x0_hat FID of one run, where it has them (a chart
    and a table each); with `name_absent` a line names the files it does not have. The report
    and the board's run page both show these through this one function."""
    parts, absent = [], []
    for rel, title, chart, hint in (
        ("eval/sweep.json", "Sampler sweep", _sweep_chart, "difflab eval RUN --sweep"),
        ("eval/guidance.json", "Guidance curve", _guidance_chart, "a guidance sweep"),
        ("eval/x0_fid.json", "FID of x0_hat across steps", _x0_chart, "--x0-fid-every"),
    ):
        data, note = read_json(run_dir, rel)
        if note:
            notes.append(note)
        rows = _rows(data)
        if rows is None:
            absent.append(f"{rel} ({hint})")
            continue
        parts.append(f"<h3>{esc(title)} ({esc(rel)})</h3>{chart(rows)}{rows_table(rows)}")
    if absent and name_absent:
        parts.append(f'<p class="empty">not in this run: {esc(", ".join(absent))}</p>')
    return "".join(parts)


def _rows(data: Any) -> list[dict[str, Any]] | None:
    """A list of row objects, bare or under "rows"; None for anything else."""
    if isinstance(data, dict):
        data = data.get("rows")
    if not isinstance(data, list) or not data:
        return None
    rows = [r for r in data if isinstance(r, dict)]
    return rows or None


def rows_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a table (columns in first-seen order), cut at a limit with a note."""
    columns = list(dict.fromkeys(k for r in rows for k in r))[:_MAX_COLUMNS]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{esc(r.get(c))}</td>' for c in columns) + "</tr>"
        for r in rows[:_MAX_ROWS]
    )
    cut = (
        f'<p class="note">first {_MAX_ROWS} of {len(rows)} rows</p>'
        if len(rows) > _MAX_ROWS
        else ""
    )
    return f'<table class="rows"><tr>{head}</tr>{body}</table>{cut}'


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _series(
    rows: list[dict[str, Any]], x: str, y: str, label: Callable[[dict], str]
) -> list[Series]:
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if _number(r.get(x)) and _number(r.get(y)):
            groups.setdefault(label(r), []).append((float(r[x]), float(r[y])))
    return [(name, sorted(points)) for name, points in groups.items()]


def _sweep_chart(rows: list[dict[str, Any]]) -> str:
    def label(r: dict) -> str:
        eta = r.get("eta")  # line_chart escapes labels: format, do not escape, here
        shown = "" if eta is None else f" eta={eta:g}" if _number(eta) else f" eta={eta}"
        return f"{r.get('sampler')}{shown}"

    series = _series(rows, "nfe", "fid", label)
    return line_chart(series, title="FID by sampler", x_label="model evaluations per image (NFE)")


def _guidance_chart(rows: list[dict[str, Any]]) -> str:
    """FID and, where the rows have it, class accuracy against the guidance scale w (the
    trade-off of Ho & Salimans 2022, Fig. 1-2); sampling time is in the table."""
    x = next((k for k in _GUIDANCE_KEYS if any(k in r for r in rows)), None)
    if x is None:
        return f'<p class="empty">no {" / ".join(_GUIDANCE_KEYS)} column to plot against</p>'
    label = f"guidance scale ({x})"
    fid = _series(rows, x, "fid", lambda r: "FID")
    charts = [line_chart(fid, title="FID by guidance", x_label=label)]
    if any("class_accuracy" in r for r in rows):
        accuracy = _series(rows, x, "class_accuracy", lambda r: "class accuracy")
        charts.append(line_chart(accuracy, title="class accuracy by guidance", x_label=label))
    return f'<div class="charts">{"".join(charts)}</div>'


def _x0_chart(rows: list[dict[str, Any]]) -> str:
    series = _series(rows, "i", "fid", lambda r: "FID of x0_hat")
    return line_chart(series, title="FID of x0_hat", x_label="sampling step")
