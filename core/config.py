"""Configuration: TOML files read with tomllib into frozen dataclasses, validated in one place.

A dataclass field may declare its allowed range in its metadata:

    speed_limit_mps: float = field(default=25.0, metadata=rng(0.0, 60.0))

Unknown keys, wrong types and out-of-range values raise ``ConfigError`` naming the file, the dotted
key and what is allowed. Nested dataclasses map to TOML tables; tuples of dataclasses to arrays of
tables.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, with the file and the dotted key it concerns."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key or '<root>'}: {problem}")


def rng(lo: float | None = None, hi: float | None = None, *, choices: tuple | None = None) -> dict:
    """Field metadata: inclusive range [lo, hi] and/or a set of allowed values."""
    return {"range": (lo, hi), "choices": choices}


def _describe_range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"[{lo}, {hi}]"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _convert(value: Any, tp: Any, source: str, key: str, meta: Mapping) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, source, key, meta)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(source, key, "; ".join(errors))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a table, found {type(value).__name__}")
        return from_mapping(tp, value, source, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, f"expected an array, found {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], source, f"{key}[{i}]", {}) for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(source, key, f"expected an array of {len(args)} values, found {len(value)}")
        return tuple(_convert(v, a, source, f"{key}[{i}]", {}) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a table, found {type(value).__name__}")
        _, vt = typing.get_args(tp)
        for k, v in value.items():
            if isinstance(v, Mapping) and vt in _SCALAR_NAMES:
                raise ConfigError(source, f"{key}.{k}", _dotted_key_hint(k, v, vt))
        return {str(k): _convert(v, vt, source, f"{key}.{k}", meta) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, f"expected a number, found {type(value).__name__} {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(source, key, f"expected a finite number, found {value}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, found {type(value).__name__} {value!r}")
    elif tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, found {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, found {type(value).__name__} {value!r}")
    lo, hi = meta.get("range", (None, None)) if meta else (None, None)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(source, key, f"{value!r} is out of range; allowed {_describe_range(lo, hi)}")
    choices = meta.get("choices") if meta else None
    if choices is not None and value not in choices:
        raise ConfigError(source, key, f"{value!r} is not allowed; choose one of {', '.join(map(str, choices))}")
    return value


_SCALAR_NAMES = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}


def _dotted_key_hint(name: str, table: Mapping, tp: type) -> str:
    """A table where a scalar belongs: most likely a name with a dot left unquoted, which TOML reads
    as nested tables (perception.lidar = 1.0 is perception = {lidar = 1.0})."""
    dotted, value = str(name), table
    while isinstance(value, Mapping) and len(value) == 1:
        inner, value = next(iter(value.items()))
        dotted = f"{dotted}.{inner}"
    example = f'"{dotted}" = {value!r}' if not isinstance(value, Mapping) else f'"{dotted}.NAME" = ...'
    return (f"expected {_SCALAR_NAMES[tp]}, found a table {dict(table)!r}: TOML reads an unquoted dotted key "
            f"as nested tables; quote a name that contains a dot, e.g. {example}")


def from_mapping(cls: type[T], data: Mapping[str, Any], source: str = "", prefix: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, validating every key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(source, key, f"unknown key; allowed keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], source, key, f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(source, key, "missing required key")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # cross-field checks in __post_init__
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(source, prefix, str(exc)) from None


def load_toml(cls: type[T], path: str | Path) -> T:
    """Read ``path`` and build ``cls``; unreadable files and syntax errors are ConfigErrors too."""
    return from_mapping(cls, read_toml(path), str(path))


def read_toml(path: str | Path) -> dict:
    """The table of the TOML file ``path``; unreadable files and syntax errors are ConfigErrors."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition; tomllib decodes before parsing
        raise ConfigError(str(path), "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # a folder, no permission: the user's path, not a bug
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    return data


def replace_path(obj: T, dotted_key: str, value: Any, source: str = "<override>", _prefix: str = "") -> T:
    """Return a copy of a nested frozen dataclass with one dotted key replaced and validated."""
    head, _, rest = dotted_key.partition(".")
    full = f"{_prefix}{head}"
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if head not in fields:
        raise ConfigError(source, full, f"unknown key; allowed keys: {', '.join(sorted(fields))}")
    if rest:
        inner = replace_path(getattr(obj, head), rest, value, source, f"{full}.")
        return dataclasses.replace(obj, **{head: inner})
    hints = typing.get_type_hints(type(obj))
    return dataclasses.replace(obj, **{head: _convert(value, hints[head], source, full, fields[head].metadata)})
