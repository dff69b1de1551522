"""Which config keys differ between runs: the one home for `runs compare` and the board."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = "\0missing"  # not valid JSON text, so it never equals a dumped value


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Sorted keys of flattened configs whose values are not all the same.

    Values compare as JSON (1 and 1.0 differ; a list equals an equal list); a key missing in
    one config differs from any value, None included.
    """
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({_as_json(c, k) for c in configs}) > 1]


def _as_json(config: Mapping[str, Any], key: str) -> str:
    return json.dumps(config[key], sort_keys=True, default=str) if key in config else _MISSING
