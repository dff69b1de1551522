"""`difflab board`: browse runs in a web page (read-only, 127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import argparse
import errno
import logging
from typing import Any

log = logging.getLogger(__name__)


def add_parser(sub: Any, name: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help="web page over the run store: runs table, curves, sample grids, comparisons",
        description=__doc__,
    )
    parser.add_argument("--runs-dir", default="runs", help="folder of run folders (default: runs)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from difflab.tracking.board.server import make_server

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port: {args.port} is not a port number (0-65535)")
    try:
        server = make_server(args.runs_dir, host=args.host, port=args.port)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(_listen_error(args.host, args.port, err)) from None
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    log.info(
        "difflab board on http://%s:%d/ (runs: %s); Ctrl-C stops it", shown, port, args.runs_dir
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _listen_error(host: str, port: int, err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return (
            f"--port {port}: {host}:{port} is already in use (another board?); "
            "pick another with --port, or --port 0 for any free port"
        )
    return f"--host {host} --port {port}: cannot listen there ({err.strerror or err})"
