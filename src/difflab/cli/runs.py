"""`difflab runs ls | show RUN | compare RUN RUN ... | best --metric fid | reindex`
`difflab runs report RUN [RUN ...] --out report.html`.

Tables on stdout for people, `--json` for scripts. RUN is a run folder name, a run number
(7 or 00007) or a path. The index (`<runs-dir>/runs.sqlite`) is built on first use;
`reindex` rebuilds it from the run folders (a damaged one is moved aside, not deleted).
`report` writes one self-contained HTML file (curves, sample grids, metrics, config, code) that
opens offline in any browser: the board's "download report" link gives the same file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from difflab.tracking.config_diff import differing_keys

log = logging.getLogger(__name__)


def add_parser(sub: Any, name: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help="list, inspect and compare runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", default="runs", help="folder of run folders (default: runs)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions.add_parser("ls", parents=[common], help="all runs with their last metric values")
    show = actions.add_parser("show", parents=[common], help="one run: config, metrics, files")
    show.add_argument("run", metavar="RUN")
    compare = actions.add_parser("compare", parents=[common], help="runs side by side")
    compare.add_argument("runs", metavar="RUN", nargs="+")
    best = actions.add_parser("best", parents=[common], help="the run with the best metric")
    best.add_argument("--metric", default="fid", help="metric name (default: fid)")
    order = best.add_mutually_exclusive_group()
    order.add_argument(
        "--lower-is-better",
        dest="lower",
        action="store_true",
        default=True,
        help="smaller values win (default)",
    )
    order.add_argument("--higher-is-better", dest="lower", action="store_false")
    actions.add_parser("reindex", parents=[common], help="rebuild runs.sqlite from the folders")
    _add_report_parser(actions, common)
    parser.set_defaults(handler=run)
    return parser


def _add_report_parser(actions: Any, common: argparse.ArgumentParser) -> None:
    from difflab.tracking.board.embed import ReportLimits  # light: --help stays fast

    help_of = {f.name: f.metadata["help"] for f in dataclasses.fields(ReportLimits)}
    report = actions.add_parser(
        "report", parents=[common], help="one self-contained HTML file for runs, to send"
    )
    report.add_argument("runs", metavar="RUN", nargs="+")
    report.add_argument("--out", default="report.html", help="HTML file (default: report.html)")
    report.add_argument(
        "--max-grids",
        type=int,
        default=ReportLimits.max_grids,
        help=f"{help_of['max_grids']} (default {ReportLimits.max_grids})",
    )
    report.add_argument(
        "--max-image-kb",
        type=int,
        default=ReportLimits.max_image_bytes // 1024,
        help=f"{help_of['max_image_bytes']}, in KiB (default {ReportLimits.max_image_bytes // 1024})",
    )


def run(args: argparse.Namespace) -> int:
    from difflab.tracking.query import open_store
    from difflab.tracking.reindex import rebuild_index
    from difflab.tracking.store import INDEX_FILE, index_errors

    if args.action == "reindex":  # the one action that must work on a damaged index
        result = dataclasses.asdict(rebuild_index(args.runs_dir))
        result["index"] = str(Path(args.runs_dir).resolve() / INDEX_FILE)
    else:
        with index_errors(Path(args.runs_dir).resolve() / INDEX_FILE):
            with open_store(args.runs_dir) as store:
                result = ACTIONS[args.action](store, args)
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(args.action, result))
    return 0


# --- actions: each returns JSON-ready data ------------------------------------------------------


def list_runs(store: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    return [r.to_json() for r in store.list_runs()]


def show_run(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    from difflab.tracking.query import resolve_run

    name = resolve_run(store, args.run)
    return {
        **store.get_run(name).to_json(),
        "config": store.parameters(name),
        "files": [
            {"step": a.step, "name": a.name, "kind": a.kind, "path": str(a.path)}
            for a in store.artifacts(name, on_disk=True)  # pruned checkpoints left out
        ],
    }


def compare_runs(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    from difflab.tracking.query import resolve_run

    names = [resolve_run(store, ref) for ref in args.runs]
    params = {n: store.parameters(n) for n in names}
    differing = {
        k: [params[n].get(k) for n in names] for k in differing_keys(list(params.values()))
    }
    runs = [store.get_run(n) for n in names]
    metrics = sorted({m for r in runs for m in r.last})
    return {
        "runs": names,
        "config_differences": differing,
        "metrics": {m: [r.last.get(m) for r in runs] for m in metrics},
    }


def write_report(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    from difflab.files import atomic_write_bytes
    from difflab.tracking.board.report import ReportLimits, build_report
    from difflab.tracking.query import resolve_run

    limits = ReportLimits(max_grids=args.max_grids, max_image_bytes=args.max_image_kb * 1024)
    names = [resolve_run(store, ref) for ref in args.runs]
    report = build_report(store, names, limits)
    data = report.html.encode("utf-8")
    atomic_write_bytes(args.out, data)
    for note in report.left_out:
        log.warning("left out of the report: %s", note)
    return {"out": str(args.out), "bytes": len(data), "runs": names, "left_out": report.left_out}


def best(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    from difflab.tracking.query import best_run

    record = best_run(store, args.metric, lower_is_better=args.lower)
    return {"metric": args.metric, "value": record.last[args.metric], "run": record.to_json()}


ACTIONS = {  # `reindex` is handled in `run`: it must also work when the index cannot open
    "ls": list_runs,
    "show": show_run,
    "compare": compare_runs,
    "best": best,
    "report": write_report,
}


# --- tables ---------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[format_value(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def render(action: str, result: Any) -> str:
    if action == "ls":
        metrics = sorted({m for r in result for m in r["metrics"]})
        rows = [
            [
                r["name"],
                r["status"],
                _when(r["started"]),
                r["dataset"],
                r["preset"],
                *[r["metrics"].get(m) for m in metrics],
            ]
            for r in result
        ]
        return table(["run", "status", "started", "dataset", "preset", *metrics], rows)
    if action == "show":
        head = table(
            ["field", "value"],
            [[k, result[k]] for k in ("name", "status", "dataset", "preset", "path")],
        )
        metrics = table(["metric", "last"], sorted(result["metrics"].items()))
        config = table(["config", "value"], sorted(result["config"].items()))
        files = table(
            ["step", "name", "kind", "path"],
            [[f["step"], f["name"], f["kind"], f["path"]] for f in result["files"]],
        )
        return "\n".join([head, metrics, config, files])
    if action == "compare":
        config = table(
            ["config (differs)", *result["runs"]],
            [[k, *v] for k, v in result["config_differences"].items()],
        )
        metrics = table(
            ["metric (last)", *result["runs"]], [[k, *v] for k, v in result["metrics"].items()]
        )
        return config + "\n" + metrics
    if action == "report":
        return f"wrote {result['out']} ({result['bytes']} bytes): {', '.join(result['runs'])}\n"
    if action == "best":
        return f"{result['run']['name']}  {result['metric']}={format_value(result['value'])}\n"
    lines = [f"indexed {result['runs']} runs into {result['index']}"]
    if result["damaged_index_moved_to"]:
        lines.append(f"the damaged index was moved to {result['damaged_index_moved_to']}")
    lines += [f"skipped {s['folder']}: {s['reason']}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"
