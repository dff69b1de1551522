"""Shared by the data-loader tests: an autouse fixture that hides the real cache,
DIFFLAB_DATA and system folders (import it into a test module to turn it on there), and md5."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from difflab.data import locate as locate_module


@pytest.fixture(autouse=True)
def isolated_places(tmp_path, monkeypatch):
    """No test sees the real cache, DIFFLAB_DATA or system folders unless it sets them."""
    monkeypatch.delenv("DIFFLAB_DATA", raising=False)
    monkeypatch.delenv("DIFFLAB_DOWNLOAD_URL", raising=False)
    monkeypatch.setenv("DIFFLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(locate_module, "SYSTEM_DIRS", ())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
