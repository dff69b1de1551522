"""Notifications: run a command or POST JSON to a webhook when a metric crosses a threshold,
or when a run ends or fails. Delivery happens on a small bounded thread pool, so a slow
webhook never slows training; a failed delivery is a warning, never an error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from difflab.training.callback import Callback

log = logging.getLogger(__name__)
_SPEC = re.compile(r"^\s*(?P<metric>[^<>\s]+)\s*(?P<op>[<>])\s*(?P<value>[-+0-9.eE]+|inf)\s*$")


@dataclass(frozen=True)
class Threshold:
    """Fires once, the first time `metric` goes above `above` or below `below`.

    A non-finite value (a diverged loss) counts as going above.
    """

    metric: str
    above: float | None = None
    below: float | None = None

    def __post_init__(self) -> None:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"threshold on {self.metric!r}: give exactly one of above/below")

    def crossed(self, value: float) -> bool:
        if not math.isfinite(value):
            return self.above is not None or math.isinf(value) and value < 0
        return value > self.above if self.above is not None else value < self.below

    def describe(self) -> str:
        return (
            f"{self.metric}>{self.above}"
            if self.above is not None
            else f"{self.metric}<{self.below}"
        )


def parse_threshold(spec: str) -> Threshold:
    """ "fid<20" or "train/loss>1.5" -> Threshold (the form the command line takes)."""
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(
            f"notify threshold {spec!r}: write METRIC<VALUE or METRIC>VALUE, "
            "e.g. fid<20 or train/loss>1.5"
        )
    value = float(match["value"])
    if match["op"] == ">":
        return Threshold(match["metric"], above=value)
    return Threshold(match["metric"], below=value)


class NotifyCallback(Callback):
    """Sends events {"event": "threshold" | "finished" | "failed", "run", "step", ...}."""

    order = 95

    def __init__(
        self,
        *,
        command: str | Sequence[str] | None = None,
        webhook: str | None = None,
        thresholds: Sequence[Threshold | str] = (),
        on_end: bool = True,
        timeout: float = 10.0,
        max_pending: int = 16,
    ) -> None:
        if command is None and webhook is None:
            raise ValueError("NotifyCallback needs a command or a webhook URL")
        if webhook is not None and not webhook.startswith(("http://", "https://")):
            raise ValueError(f"notify webhook {webhook!r}: must be an http:// or https:// URL")
        self.command = shlex.split(command) if isinstance(command, str) else command
        self.webhook, self.timeout, self.max_pending = webhook, timeout, max_pending
        self.thresholds = [parse_threshold(t) if isinstance(t, str) else t for t in thresholds]
        self.on_end = on_end
        self._fired: set[Threshold] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._fit_ended = False

    def before_fit(self, learn: Any) -> None:
        self._fired, self._fit_ended = set(), False
        if learn.is_main_process and self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="difflab-notify")

    def on_report(self, learn: Any, name: str, value: float, step: int) -> None:
        for threshold in self.thresholds:
            if (
                threshold.metric == name
                and threshold not in self._fired
                and threshold.crossed(value)
            ):
                self._fired.add(threshold)
                self.send(
                    learn,
                    {
                        "event": "threshold",
                        "metric": name,
                        "value": _json_float(value),
                        "threshold": threshold.describe(),
                        "step": step,
                    },
                )

    def after_fit(self, learn: Any) -> None:
        self._fit_ended = True

    def cleanup_fit(self, learn: Any) -> None:
        """The end event, then wait (bounded by `timeout`) for deliveries in flight."""
        if self.on_end:
            self.send(
                learn,
                {
                    "event": "finished" if self._fit_ended else "failed",
                    "step": getattr(learn, "step", None),
                },
            )
        if self._pool is not None:
            wait(self._pending, timeout=self.timeout)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._pending = None, []

    def send(self, learn: Any, event: dict[str, Any]) -> None:
        if self._pool is None or not learn.is_main_process:
            return
        self._pending = [f for f in self._pending if not f.done()]
        if len(self._pending) >= self.max_pending:
            log.warning(
                "notify: %d deliveries still pending; dropping %s event",
                len(self._pending),
                event["event"],
            )
            return
        run_dir = getattr(learn, "run_dir", None)
        payload = {
            **event,
            "run": run_dir.name if run_dir else None,
            "run_dir": str(run_dir) if run_dir else None,
            "time": time.time(),
        }
        self._pending.append(self._pool.submit(self._deliver, payload))

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, sort_keys=True)
        if self.command:
            try:
                done = subprocess.run(
                    self.command,
                    input=body,
                    text=True,
                    capture_output=True,
                    timeout=self.timeout,
                    env={**os.environ, "DIFFLAB_EVENT": body},
                )
                if done.returncode != 0:
                    log.warning(
                        "notify command %s exited with %d: %s",
                        self.command[0],
                        done.returncode,
                        done.stderr.strip()[-300:],
                    )
            except (OSError, subprocess.TimeoutExpired) as err:
                log.warning("notify command %s failed: %s", self.command[0], err)
        if self.webhook:
            request = urllib.request.Request(
                self.webhook,
                data=body.encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read(1024)
            except OSError as err:  # URLError, HTTPError and timeouts are all OSErrors
                log.warning("notify webhook %s failed: %s", self.webhook, err)


def _json_float(value: float) -> float | str:
    """JSON has no NaN/inf: send them as strings."""
    return value if math.isfinite(value) else str(value)
