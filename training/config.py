"""Layered run configuration: dataclass defaults < YAML file < ``key=value`` overrides.

Every stage owns a typed default config (a dataclass, nested dataclasses allowed);
:func:`resolve` layers a YAML file and command-line overrides on top, refuses
unknown keys (listing the valid ones), and :func:`save_resolved` writes the
result next to the run's outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value is wrong; the message names it and the fix."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested dataclass -> plain dict (JSON/YAML serialisable)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_sha256(cfg: Any) -> str:
    """Stable hash of the resolved config (sorted-key JSON)."""
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def parse_overrides(items: typing.Iterable[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "epochs=2"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. epochs=2)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def merge(cfg: T, updates: dict[str, Any], prefix: str = "") -> T:
    """Return a copy of dataclass ``cfg`` with ``updates`` applied (nested, typed).

    Raises
    ------
    ConfigError
        on an unknown key or a value of the wrong type.
    """
    if not isinstance(updates, dict):
        raise ConfigError(f"config section {prefix or '<root>'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for key, value in updates.items():
        if key not in fields:
            raise ConfigError(
                f"unknown config key {prefix}{key}: valid keys here are {', '.join(sorted(fields))}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current):
            changes[key] = merge(current, value, prefix=f"{prefix}{key}.")
        else:
            changes[key] = _coerce(value, hints.get(key), f"{prefix}{key}")
    return dataclasses.replace(cfg, **changes)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"bad value for {key}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key} must be a list, got {value!r}")
        inner = args[0] if args else None
        seq = [_coerce(v, inner, key) for v in value] if inner is not Ellipsis else list(value)
        return tuple(seq) if origin is tuple else seq
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} must be a mapping, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"config key {key} must be an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            return str(value)
        return value
    return value


def resolve(default: T, yaml_path: str | os.PathLike | None = None,
            overrides: typing.Iterable[str] = ()) -> T:
    """Layer defaults < YAML < overrides and return the resolved config.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     lr: float = 1e-3
    ...     epochs: int = 1
    >>> resolve(C(), overrides=["epochs=3"]).epochs
    3
    """
    cfg = default
    if yaml_path is not None:
        try:
            data = yaml.safe_load(Path(yaml_path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{yaml_path}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{yaml_path}: not valid YAML: {e}") from None
        try:
            cfg = merge(cfg, data)
        except ConfigError as e:
            raise ConfigError(f"{yaml_path}: {e}") from None
    ov = parse_overrides(overrides)
    if ov:
        cfg = merge(cfg, ov)
    return cfg


def save_resolved(cfg: Any, out_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the resolved config as YAML into ``out_dir`` (atomically); return its path."""
    from logdigit.fsutil import atomic_write_text

    path = Path(out_dir) / name
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path
