"""Not a test: run `python -m difflab ...` on a damaged folder and judge what it did.

A case passes when the command (1) exits with the documented code: 0 where the documented
behaviour is a warning and a fallback, 2 where the input is refused; (2) writes exactly one
stderr line naming the damaged file, a line that says what to do or what was done, and no
other warning or error; (3) prints no Traceback; (4) leaves every file of the case folder
byte-identical, except the files the command legitimately writes (listed per case).
`TALLY` counts what was seen, for the summary line of `conftest.pytest_terminal_summary`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TALLY: Counter[str] = Counter()  # "cases", "tracebacks", "silent corruptions"
BOARD_STARTUP_S = 60
# A log line at WARNING or above, or the one-line error of `difflab.cli.main`.
_LOUD = re.compile(r" (WARNING|ERROR|CRITICAL) |^difflab [a-z]+: error: ")


@dataclass(frozen=True)
class Expect:
    """What a command must do with one damaged file."""

    code: int  # 0: a warning and a fallback; 2: the input is refused
    names: str  # what the one stderr line must contain: the damaged file's name (or "--port")
    advice: str  # a regex that line must match: what to do, or what was done instead
    writes: tuple[str, ...] = ()  # globs, relative to the case folder, the command may write


def env() -> dict[str, str]:
    src = str(REPO / "src")
    return {
        **os.environ,
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "DIFFLAB_DATA": os.environ.get("DIFFLAB_DATA", str(REPO.parent / "shared" / "datasets")),
    }


def difflab(*argv: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m difflab ARGV` as a real process, stdout and stderr captured."""
    return subprocess.run(
        [sys.executable, "-m", "difflab", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
    )


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `root`; a symlink is recorded as its target
    (never followed), so a link that is replaced or retargeted also counts as a change."""
    found = {}
    for folder, dirs, files in os.walk(root):  # followlinks=False: a linked folder is a link
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = "link -> " + os.readlink(path)
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _allowed(rel: str, writes: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(rel, pattern) for pattern in writes)


def judge(
    out: subprocess.CompletedProcess, expect: Expect, before: dict[str, str], root: Path
) -> list[str]:
    """Everything wrong with what the command did (empty: the case passes); counts in TALLY."""
    TALLY["cases"] += 1
    problems, silent = [], False
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    if "Traceback" in out.stderr:
        TALLY["tracebacks"] += 1
        problems.append("a Traceback on stderr")
    if out.returncode != expect.code:
        problems.append(f"exit code {out.returncode}, documented {expect.code}")
    naming = [line for line in lines if expect.names in line]
    if len(naming) != 1:
        problems.append(f"{len(naming)} stderr lines name {expect.names!r}, want 1")
        silent |= not naming and out.returncode == 0  # damage accepted without a word
    loud = [line for line in lines if _LOUD.search(line)]
    if loud != naming[:1]:
        problems.append(f"warnings/errors besides the one line: {loud}")
    if naming and not re.search(expect.advice, naming[0]):
        problems.append(f"the line does not say /{expect.advice}/: {naming[0]!r}")
    after = snapshot(root)
    changed = sorted(
        rel for rel, digest in before.items()
        if after.get(rel) != digest and not _allowed(rel, expect.writes)
    )  # fmt: skip
    created = sorted(
        rel for rel in after.keys() - before.keys() if not _allowed(rel, expect.writes)
    )
    if changed:
        silent = True
        problems.append(f"files changed or removed that the command may not write: {changed}")
    if created:
        problems.append(f"files created that the command may not write: {created}")
    TALLY["silent corruptions"] += silent
    if problems:
        problems.append("stderr:\n" + out.stderr[-3000:])
    return problems


# --- a real board on 127.0.0.1, bounded in time -------------------------------------------------


def get(port: int, path: str) -> int:
    """The HTTP status of one GET (the body is read, so the server finishes its reply)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        err.read()
        return err.code


def board_session(runs_dir: Path, paths: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    """Start `difflab board --port 0`, GET each path, stop it with Ctrl-C (SIGINT).

    Returns (the process's exit code and stderr as a CompletedProcess, {path: status}); a board
    that refuses to start returns at once with no statuses.
    """
    argv = [sys.executable, "-m", "difflab", "board", "--runs-dir", str(runs_dir), "--port", "0"]
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env()
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen, port, deadline, ended = [], None, time.monotonic() + BOARD_STARTUP_S, False
    while port is None and not ended and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        ended = line is None
        seen.append(line or "")
        if match := re.search(r"difflab board on http://127\.0\.0\.1:(\d+)/", line or ""):
            port = int(match.group(1))
    statuses = {path: get(port, path) for path in paths} if port is not None else {}
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    while not ended and (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    return subprocess.CompletedProcess(argv, code, "", "".join(seen)), statuses
