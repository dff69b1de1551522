"""`esc`: every value the board or a report shows goes through it (run names, config values,
class names and JSON numbers are user input). Its own module so that the run page and the
report's evaluation sections share it without importing each other."""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any


def esc(value: Any) -> str:
    """HTML-escaped text of a value: floats to 4 significant digits, None as "-", other
    non-strings as JSON."""
    if isinstance(value, float):
        value = "nan" if math.isnan(value) else f"{value:.4g}"
    elif value is None:
        value = "-"
    elif not isinstance(value, str):
        value = json.dumps(value)
    return escape(value, quote=True)
