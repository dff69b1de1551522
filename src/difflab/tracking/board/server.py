"""The board's HTTP server: stdlib ThreadingHTTPServer, read-only, loopback by default.

Safety: GET/HEAD only; a Content-Security-Policy that allows no inline script and nothing
from other origins; a Host-header check against DNS rebinding when bound to loopback; files
are served only when registered as images of a run and resolved inside that run's folder.
"""

from __future__ import annotations

import ipaddress
import logging
import mimetypes
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from difflab.tracking.board import pages
from difflab.tracking.board.static import CSS, JS
from difflab.tracking.store import RunStore

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_STATIC = {"/static/board.css": ("text/css", CSS), "/static/board.js": ("text/javascript", JS)}
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


class NotFound(Exception):
    pass


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
        try:
            status, ctype, body = self._route()
        except NotFound as err:
            status, ctype, body = HTTPStatus.NOT_FOUND, "text/plain", f"{err}\n".encode()
        except PermissionError as err:
            status, ctype, body = HTTPStatus.FORBIDDEN, "text/plain", f"{err}\n".encode()
        self._send(status, ctype, body, head=head)

    def _route(self) -> tuple[HTTPStatus, str, bytes]:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/favicon.ico":  # browsers ask for it; nothing to show
            return HTTPStatus.NO_CONTENT, "image/x-icon", b""
        if url.path in _STATIC:
            ctype, text = _STATIC[url.path]
            return HTTPStatus.OK, ctype, text.encode()
        if url.path.startswith("/file/"):
            return self._file(url.path)
        with RunStore(self.server.runs_dir, create=False) as store:
            return HTTPStatus.OK, "text/html; charset=utf-8", _page(store, url.path, query).encode()

    def _file(self, raw_path: str) -> tuple[HTTPStatus, str, bytes]:
        """/file/<run>/<path>: only images registered for that run, inside its folder."""
        parts = raw_path[len("/file/") :].split("/", 1)
        if len(parts) != 2:
            raise NotFound("no such file")
        name, rel = unquote(parts[0]), unquote(parts[1])
        with RunStore(self.server.runs_dir, create=False) as store:
            try:
                run_dir = store.run_dir(name)
                allowed = {a.path for a in store.artifacts(name, kind="image")}
            except ValueError:
                raise NotFound("no such run") from None
        path = (run_dir / rel).resolve()
        if not path.is_relative_to(run_dir) or not run_dir.is_relative_to(self.server.runs_dir):
            raise PermissionError("outside the run folders")
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


def _page(store: RunStore, path: str, query: dict[str, list[str]]) -> str:
    first = lambda key, default: (query.get(key) or [default])[0]  # noqa: E731
    if path == "/":
        order = "desc" if first("order", "asc") == "desc" else "asc"
        return pages.runs_page(
            store, sort=first("sort", "name"), order=order, filter_text=first("filter", "")
        )
    if path.startswith("/run/"):
        name = unquote(path[len("/run/") :])
        try:
            return pages.run_page(store, name)
        except ValueError:
            raise NotFound(f"no run named {name!r}") from None
    if path == "/compare":
        names = list(dict.fromkeys(query.get("run", [])))
        if not 2 <= len(names) <= 4:
            raise NotFound("compare needs 2 to 4 runs: /compare?run=A&run=B")
        try:
            for name in names:
                store.get_run(name)  # ValueError: no such run
            return pages.compare_page(store, names)
        except ValueError as err:
            raise NotFound(str(err)) from None
    raise NotFound("no such page")


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
