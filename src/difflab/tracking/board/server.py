"""The board's HTTP server: stdlib ThreadingHTTPServer, read-only, loopback by default.

Safety: GET/HEAD only; a Content-Security-Policy that allows no inline script and nothing
from other origins; a Host-header check against DNS rebinding when bound to loopback; files
are served only when registered as images of a run and resolved inside that run's folder;
every file is opened through `paths.inside` (a symlink leading out is never followed).
Malformed URLs and bad query values are 400, missing things 404, a damaged index 503.
"""

from __future__ import annotations

import ipaddress
import logging
import mimetypes
import re
import sqlite3
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from difflab.tracking.board import pages
from difflab.tracking.board.report import REPORT_CSP, build_report
from difflab.tracking.board.static import CSS, JS
from difflab.tracking.paths import OutsideFolderError, inside, is_inside
from difflab.tracking.query import resolve_run
from difflab.tracking.store import DamagedIndexError, RunStore

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_STATIC = {"/static/board.css": ("text/css", CSS), "/static/board.js": ("text/javascript", JS)}
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
_MAX_COMPARED = 4
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class NotFound(Exception):
    pass


class BadRequest(Exception):
    pass


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def decode_part(text: str, *, plus_is_space: bool = False) -> str:
    """Percent-decode one URL part strictly: bad escapes, bad UTF-8 and NUL are BadRequest."""
    if plus_is_space:
        text = text.replace("+", " ")
    if _BAD_ESCAPE.search(text):
        raise BadRequest(f"bad percent-encoding in {text[:80]!r}")
    try:
        decoded = unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{text[:80]!r} is not UTF-8 once decoded") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in decoded):  # NUL and other control bytes
        raise BadRequest(f"control character in {text[:80]!r}")
    return decoded


def parse_query(query: str) -> dict[str, list[str]]:
    """`a=1&a=2&b` -> {"a": ["1", "2"], "b": [""]}, decoded strictly (see decode_part)."""
    out: dict[str, list[str]] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        decoded = decode_part(key, plus_is_space=True)
        out.setdefault(decoded, []).append(decode_part(value, plus_is_space=True))
    return out


class BoardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], runs_dir: Path) -> None:
        super().__init__(address, BoardHandler)
        self.runs_dir = Path(runs_dir).resolve()
        self.loopback = _is_loopback(address[0])


class BoardHandler(BaseHTTPRequestHandler):
    server: BoardServer
    server_version = "difflab-board"

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _refuse_method(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "text/plain",
            b"read-only: GET and HEAD only\n",
            head=False,
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _respond(self, *, head: bool) -> None:
        if self.server.loopback and not self._host_is_local():
            self._send(HTTPStatus.FORBIDDEN, "text/plain", b"forbidden host\n", head=head)
            return
        extra: dict[str, str] = {}
        try:
            status, ctype, body, extra = self._route()
        except Exception as err:  # every failure is an answer, never a dropped connection
            status, message = _error_status(err)
            ctype, body = "text/plain; charset=utf-8", f"{message}\n".encode()
        self._send(status, ctype, body, head=head, extra=extra)

    def _route(self) -> tuple[HTTPStatus, str, bytes, dict[str, str]]:
        """(status, content type, body, extra headers) for the request's URL."""
        url = urlsplit(self.path)
        query = parse_query(url.query)
        if url.path == "/favicon.ico":  # browsers ask for it; nothing to show
            return HTTPStatus.NO_CONTENT, "image/x-icon", b"", {}
        if url.path in _STATIC:
            ctype, text = _STATIC[url.path]
            return HTTPStatus.OK, ctype, text.encode(), {}
        if url.path.startswith("/file/"):
            return *self._file(url.path), {}
        with RunStore(self.server.runs_dir, create=False) as store:
            if url.path == "/report":
                return _report(store, query)
            html = _page(store, url.path, query)
        return HTTPStatus.OK, "text/html; charset=utf-8", html.encode(), {}

    def _file(self, raw_path: str) -> tuple[HTTPStatus, str, bytes]:
        """/file/<run>/<path>: only images registered for that run, inside its folder."""
        parts = raw_path[len("/file/") :].split("/", 1)
        if len(parts) != 2:
            raise NotFound("no such file: /file/<run>/<path>")
        ref, rel = decode_part(parts[0]), decode_part(parts[1])
        with RunStore(self.server.runs_dir, create=False) as store:
            name = board_run(store, ref)
            run_dir = store.run_dir(name)
            allowed = {a.path for a in store.artifacts(name, kind="image")}
        path = inside(run_dir, rel)  # OutsideFolderError (403) for a symlink leading out
        if path not in allowed or not path.is_file():
            raise NotFound("not an image registered for this run")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if not ctype.startswith("image/") or ctype == "image/svg+xml":
            raise PermissionError("only raster images are served")
        return HTTPStatus.OK, ctype, path.read_bytes()

    def _host_is_local(self) -> bool:
        host = (self.headers.get("Host") or "").strip()
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return host in _LOCAL_NAMES

    def _send(
        self,
        status: HTTPStatus,
        ctype: str,
        body: bytes,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        headers = {
            "Content-Type": ctype,
            "Content-Length": str(len(body)),
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            **(extra or {}),
        }
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


def board_run(store: RunStore, ref: str) -> str:
    """The run name for a URL's run reference (name or number, as in `difflab runs`), if its
    folder is inside the runs folder; NotFound otherwise."""
    try:
        name = resolve_run(store, ref, paths=False)
        run_dir = store.run_dir(name)
    except ValueError as err:
        raise NotFound(str(err)) from None
    if not is_inside(store.runs_dir, run_dir):
        raise NotFound(f"run {name!r} is kept outside the runs folder: not shown")
    return name


def _report(
    store: RunStore, query: dict[str, list[str]]
) -> tuple[HTTPStatus, str, bytes, dict[str, str]]:
    """/report?run=A[&run=B...]: the file `difflab runs report A B` writes, as a download."""
    refs = list(dict.fromkeys(query.get("run", [])))
    if not 1 <= len(refs) <= _MAX_COMPARED:
        raise BadRequest(
            f"a report needs 1 to {_MAX_COMPARED} runs, got {len(refs)}: /report?run=A"
        )
    names = list(dict.fromkeys(board_run(store, ref) for ref in refs))
    html = build_report(store, names).html
    stem = _FILENAME_UNSAFE.sub("_", names[0])[:60] + (
        f"-and-{len(names) - 1}" if len(names) > 1 else ""
    )
    headers = {
        "Content-Disposition": f'attachment; filename="report-{stem}.html"',
        "Content-Security-Policy": REPORT_CSP,
    }
    return HTTPStatus.OK, "text/html; charset=utf-8", html.encode("utf-8"), headers


def _page(store: RunStore, path: str, query: dict[str, list[str]]) -> str:
    path = decode_part(path)
    first = lambda key, default: (query.get(key) or [default])[0]  # noqa: E731
    if path == "/":
        order = first("order", "asc")
        if order not in ("asc", "desc"):
            raise BadRequest(f"order={order!r}: use asc or desc")
        try:
            return pages.runs_page(
                store, sort=first("sort", "name"), order=order, filter_text=first("filter", "")
            )
        except pages.BadQuery as err:
            raise BadRequest(str(err)) from None
    if path.startswith("/run/"):
        return pages.run_page(store, board_run(store, path[len("/run/") :]))
    if path == "/compare":
        refs = list(dict.fromkeys(query.get("run", [])))
        if not 2 <= len(refs) <= _MAX_COMPARED:
            raise BadRequest(f"compare needs 2 to 4 runs, got {len(refs)}: /compare?run=A&run=B")
        names = list(dict.fromkeys(board_run(store, ref) for ref in refs))
        if len(names) < 2:
            raise BadRequest("compare needs 2 to 4 different runs")
        return pages.compare_page(store, names)
    raise NotFound("no such page")


def _error_status(err: Exception) -> tuple[HTTPStatus, str]:
    """The HTTP answer for an error while routing; unexpected ones are logged in one line."""
    if isinstance(err, BadRequest):
        return HTTPStatus.BAD_REQUEST, f"bad request: {err}"
    if isinstance(err, NotFound):
        return HTTPStatus.NOT_FOUND, str(err)
    if isinstance(err, OutsideFolderError | PermissionError):
        return HTTPStatus.FORBIDDEN, "forbidden: outside the run folders"
    if isinstance(err, DamagedIndexError | sqlite3.DatabaseError | FileNotFoundError):
        log.error("the board cannot read the run index: %s", err)
        return HTTPStatus.SERVICE_UNAVAILABLE, f"cannot read the run index: {err}"
    log.error("board error: %s: %s", type(err).__name__, err)
    log.debug("board error", exc_info=err)
    return HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the board's log)"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_server(runs_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8765) -> BoardServer:
    """A board over `runs_dir` (index built from the folders if missing); port 0: any free."""
    from difflab.tracking.query import open_store

    open_store(runs_dir).close()
    if not _is_loopback(host):
        log.warning(
            "the board is bound to %s: anyone who can reach this address can read "
            "your runs (it is read-only, but has no login)",
            host,
        )
    return BoardServer((host, port), Path(runs_dir))
