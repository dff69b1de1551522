"""TOML files, dotted overrides (`train.lr=3e-4`) and dict round trips for `RunConfig`."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from difflab.config.presets import PRESETS
from difflab.config.schema import RunConfig


class ConfigError(ValueError):
    """A config file or override that cannot be applied; the message says which and why."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict of a config dataclass (JSON- and TOML-friendly)."""
    return dataclasses.asdict(config)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config_class(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def config_from_dict(data: dict[str, Any], cls: type = RunConfig, *, where: str = "") -> Any:
    """Build a (nested) config dataclass from a dict; unknown keys are an error."""
    hints = _field_types(cls)
    unknown = set(data) - set(hints)
    if unknown:
        known = ", ".join(sorted(hints))
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in [{where or 'top level'}]; known: {known}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        dotted = f"{where}.{name}" if where else name
        if _is_config_class(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"[{dotted}] must be a table, got {value!r}")
            kwargs[name] = config_from_dict(value, tp, where=dotted)
        else:
            kwargs[name] = coerce_value(value, tp, dotted)
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def coerce_value(value: Any, tp: Any, dotted: str) -> Any:
    """Convert a TOML value or a command-line string to the field's annotated type."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        tp = next(a for a in args if a is not type(None))
    if typing.get_origin(tp) is tuple:  # tuple[int, ...]: "32,64,128" or a TOML list
        items = value.split(",") if isinstance(value, str) else value
        return tuple(coerce_value(v, typing.get_args(tp)[0], dotted) for v in items)
    try:
        # TOML's true is no 1 and its 1 no true: only command-line strings are parsed.
        if tp is bool:
            if isinstance(value, bool):
                return value
            if not isinstance(value, str):
                raise ValueError("expected true or false")
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if tp in (int, float) and isinstance(value, bool):
            raise ValueError("expected a number, not true/false")
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected a whole number")
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError) as err:
        flag = "--" + dotted.replace("_", "-")
        name = flag if "_" not in dotted else f"{flag} (TOML key {dotted})"
        raise ConfigError(f"{name}: cannot use {value!r} ({err})") from err
    if isinstance(tp, types.UnionType):  # pragma: no cover - no such fields today
        raise ConfigError(f"{dotted}: unsupported type {tp}")
    return value


def _split_dotted(key: str) -> list[str]:
    return [part.replace("-", "_") for part in key.split(".")]


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A new config with dotted keys replaced, e.g. {"train.lr": "3e-4"}."""
    data = config_to_dict(config)
    for key, value in overrides.items():
        parts = _split_dotted(key)
        node, cls = data, RunConfig
        for part in parts[:-1]:
            hints = _field_types(cls)
            if part not in hints or not _is_config_class(hints[part]):
                raise ConfigError(f"--{key}: no section {part!r}")
            node, cls = node[part], hints[part]
        if parts[-1] not in _field_types(cls) or _is_config_class(_field_types(cls)[parts[-1]]):
            raise ConfigError(f"--{key}: no such option (see --help)")
        node[parts[-1]] = coerce_value(value, _field_types(cls)[parts[-1]], ".".join(parts))
    return config_from_dict(data)


def load_config(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Defaults, then a preset, then a TOML file, then dotted overrides, in that order."""
    config = RunConfig()
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"--preset: {preset!r} is not one of {', '.join(PRESETS)}")
        config = apply_overrides(config, PRESETS[preset])
    if path is not None:
        path = Path(path)
        try:
            with path.open("rb") as fh:
                file_data = tomllib.load(fh)
        except FileNotFoundError as err:
            raise ConfigError(f"--config: {path} does not exist") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"--config: {path} is not valid TOML ({err})") from err
        except UnicodeDecodeError as err:  # a ValueError that would not name the file
            raise ConfigError(
                f"--config: {path} is not UTF-8 text (byte {err.start}); "
                "a TOML config is UTF-8: save it as such, or restore it"
            ) from err
        merged = config_to_dict(config)
        _deep_update(merged, file_data)
        try:
            config = config_from_dict(merged)
        except ConfigError as err:
            raise ConfigError(f"--config {path}: {err}") from err
    return apply_overrides(config, overrides or {})


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
