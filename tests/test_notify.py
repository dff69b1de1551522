"""NotifyCallback against a real local HTTP server on 127.0.0.1 and a real command."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from difflab.training.callbacks import notify as notify_module
from difflab.training.callbacks.notify import NotifyCallback, Threshold, parse_threshold


class Collector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, delay: float = 0.0, status: int = 200) -> None:
        self.events: list[dict] = []
        self.delay, self.status = delay, status
        super().__init__(("127.0.0.1", 0), CollectHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class CollectHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.headers["Content-Type"] == "application/json"
        time.sleep(self.server.delay)
        self.server.events.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def collector():
    servers = []

    def start(**kwargs) -> Collector:
        server = Collector(**kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fake_learner(tmp_path: Path, *, main: bool = True) -> SimpleNamespace:
    return SimpleNamespace(is_main_process=main, run_dir=tmp_path / "00003-demo", step=0)


def fit(cb: NotifyCallback, learn, fids, *, fail: bool = False) -> None:
    cb.before_fit(learn)
    for step, fid in enumerate(fids, 1):
        learn.step = step
        cb.on_report(learn, "fid", fid, step)
        cb.on_report(learn, "train/loss", 0.1, step)
    if not fail:
        cb.after_fit(learn)
    cb.cleanup_fit(learn)


def test_threshold_crossing_and_end_are_posted(collector, tmp_path):
    server = collector()
    cb = NotifyCallback(webhook=server.url, thresholds=["fid<20", Threshold("train/loss", above=1)])
    fit(cb, fake_learner(tmp_path), [30.0, 25.0, 18.0, 15.0, 12.0])
    events = sorted(server.events, key=lambda e: e["time"])
    assert [e["event"] for e in events] == ["threshold", "finished"]
    assert events[0] | {"time": 0} == {
        "event": "threshold",
        "metric": "fid",
        "value": 18.0,
        "threshold": "fid<20.0",
        "step": 3,
        "run": "00003-demo",
        "run_dir": str(tmp_path / "00003-demo"),
        "time": 0,
    }
    assert events[1]["step"] == 5


def test_failed_run_and_diverged_loss(collector, tmp_path):
    server = collector()
    cb = NotifyCallback(webhook=server.url, thresholds=["train/loss>5"])
    learn = fake_learner(tmp_path)
    cb.before_fit(learn)
    cb.on_report(learn, "train/loss", float("nan"), 7)
    cb.cleanup_fit(learn)  # no after_fit: the fit raised
    events = sorted(server.events, key=lambda e: e["time"])
    assert [(e["event"], e.get("value")) for e in events] == [
        ("threshold", "nan"),
        ("failed", None),
    ]


def test_command_gets_the_event_on_stdin_and_env(tmp_path):
    out = tmp_path / "events.jsonl"
    script = (
        "import os, sys; line = sys.stdin.read(); assert line == os.environ['DIFFLAB_EVENT'];"
        f" open({str(out)!r}, 'a').write(line + '\\n')"
    )
    cb = NotifyCallback(command=[sys.executable, "-c", script], thresholds=["fid<20"])
    fit(cb, fake_learner(tmp_path), [25.0, 10.0])
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(e["event"] for e in events) == ["finished", "threshold"]


def test_only_main_process_notifies(collector, tmp_path):
    server = collector()
    fit(
        NotifyCallback(webhook=server.url, thresholds=["fid<20"]),
        fake_learner(tmp_path, main=False),
        [10.0],
    )
    assert server.events == []


def test_unreachable_or_slow_webhook_never_stops_training(collector, tmp_path, caplog, monkeypatch):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with caplog.at_level(logging.WARNING):
        fit(NotifyCallback(webhook=dead, timeout=2), fake_learner(tmp_path), [1.0])
    assert any("notify webhook" in r.getMessage() for r in caplog.records)

    slow = collector(delay=3.0)
    waits = []  # what the end of the fit waited for: (timeout, deliveries still in flight)
    real_wait = notify_module.wait

    def spy(futures, timeout=None):
        result = real_wait(futures, timeout=timeout)
        waits.append((timeout, len(result.not_done)))
        return result

    monkeypatch.setattr(notify_module, "wait", spy)
    fit(NotifyCallback(webhook=slow.url, timeout=0.5), fake_learner(tmp_path), [1.0])
    # the end of the fit waits at most `timeout` for deliveries (whether the slow one is still in
    # flight then depends on the machine's load: its own HTTP timeout is 0.5 s as well)
    assert [timeout for timeout, _ in waits] == [0.5]

    refusing = collector(status=500)
    with caplog.at_level(logging.WARNING):
        fit(NotifyCallback(webhook=refusing.url), fake_learner(tmp_path), [1.0])
    assert any("500" in r.getMessage() for r in caplog.records)


def test_pending_deliveries_are_bounded(collector, tmp_path, caplog):
    slow = collector(delay=1.0)
    cb = NotifyCallback(
        webhook=slow.url, thresholds=[f"m{k}<1" for k in range(6)], max_pending=3, timeout=0.2
    )
    learn = fake_learner(tmp_path)
    cb.before_fit(learn)
    with caplog.at_level(logging.WARNING):
        for k in range(6):
            cb.on_report(learn, f"m{k}", 0.0, 1)
    assert sum("dropping" in r.getMessage() for r in caplog.records) == 3
    cb.after_fit(learn)
    cb.cleanup_fit(learn)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="command or a webhook"):
        NotifyCallback()
    with pytest.raises(ValueError, match="http"):
        NotifyCallback(webhook="file:///etc/passwd")
    with pytest.raises(ValueError, match="METRIC<VALUE"):
        parse_threshold("fid=3")
    with pytest.raises(ValueError, match="exactly one"):
        Threshold("fid")
    assert parse_threshold("train/loss > 1e-3") == Threshold("train/loss", above=1e-3)
