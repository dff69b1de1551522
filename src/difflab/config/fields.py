"""The field and validation helpers every config dataclass uses: a default with its help text,
and checks whose errors name the flag the user has to change."""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any


def option(default: Any, help: str) -> Any:
    """A dataclass field with its one-line help text (used for --help)."""
    if isinstance(default, list | dict | set):
        raise TypeError("use tuples for sequence defaults: configs are frozen")
    return field(default=default, metadata={"help": help})


def require(ok: bool, flag: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{flag}: {message}")


def at_least(value: float, low: float, flag: str) -> None:
    require(value >= low, flag, f"must be >= {low:g}, got {value!r}")


def positive(value: float, flag: str) -> None:
    # also refuses nan and inf, which would only fail (or never finish) deep inside training
    require(math.isfinite(value) and value > 0, flag, f"must be a finite number > 0, got {value!r}")


def choice(value: str, choices: tuple[str, ...], flag: str) -> None:
    require(value in choices, flag, f"{value!r} is not one of {', '.join(choices)}")
