"""Is a "running" run still running? A kill -9 leaves run.json saying "running" forever.

run.json records the PID and host of the training process and a heartbeat, the time of the
last metrics flush. A run whose PID is gone on this host, or whose heartbeat is older than
HEARTBEAT_STALE_S (the only sign for a run on another host), reads "interrupted". Nothing is
written: the status is derived each time it is read.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

# Long enough for an evaluation between two flushes (FID on a large sample set), short enough
# that a dead run on another machine stops reading "running" the same day.
HEARTBEAT_STALE_S = 3 * 3600.0
INTERRUPTED = "interrupted"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: checks only
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's; otherwise cannot tell
        return True
    return True


def live_status(info: dict[str, Any], *, now: float | None = None) -> str:
    """`info["status"]`, or "interrupted" for a running run whose process is gone."""
    status = str(info.get("status"))
    if status != "running":
        return status
    pid, host, beat = info.get("pid"), info.get("host"), info.get("heartbeat")
    if isinstance(pid, int) and host == socket.gethostname() and not pid_alive(pid):
        return INTERRUPTED
    if isinstance(beat, int | float):  # also catches a PID reused by another process
        now = time.time() if now is None else now
        return INTERRUPTED if now - beat > HEARTBEAT_STALE_S else status
    return status
