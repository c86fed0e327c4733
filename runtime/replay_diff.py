"""Bit-exact comparison of two messages, naming the first field (and element) that differs.

Equality is by representation, not by value: arrays must agree in dtype, shape and bytes, floats
in their IEEE bits. So NaN equals the same NaN, while -0.0 differs from 0.0: a replay that turns one
into the other did compute something else.
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

import numpy as np

from runtime.logs.dataclass_proto import is_named_tuple_type, record_field_names


@dataclass(frozen=True, slots=True)
class Divergence:
    topic: str
    t_ns: int  # delivery time of the diverging message
    index: int  # its position among the messages of its topic (0-based)
    field: str  # e.g. "trajectory_xy[3, 1]", "(message)" when one side has no message
    recorded: object
    replayed: object

    def describe(self) -> str:
        return (f"first divergence at t={self.t_ns / 1e9:.9f} s on {self.topic} (message #{self.index}): "
                f"{self.field}: recorded {self.recorded!r}, replayed {self.replayed!r}")


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def first_difference(recorded: object, replayed: object, path: str = "") -> tuple[str, object, object] | None:
    """(field path, recorded value, replayed value) of the first difference, or None when identical."""
    where = path or "(message)"
    if type(recorded) is not type(replayed):
        return where + " type", type(recorded).__name__, type(replayed).__name__
    if isinstance(recorded, np.ndarray):
        return _array_difference(recorded, replayed, path)
    if dataclasses.is_dataclass(recorded) or is_named_tuple_type(type(recorded)):
        for name in record_field_names(type(recorded)):
            sub = f"{path}.{name}" if path else name
            diff = first_difference(getattr(recorded, name), getattr(replayed, name), sub)
            if diff is not None:
                return diff
        return None
    if isinstance(recorded, float):
        return None if _float_bits(recorded) == _float_bits(replayed) else (where, recorded, replayed)
    if isinstance(recorded, dict):
        if list(recorded) != list(replayed):
            return where + " keys", list(recorded), list(replayed)
        for key in recorded:
            diff = first_difference(recorded[key], replayed[key], f"{path}[{key!r}]")
            if diff is not None:
                return diff
        return None
    if isinstance(recorded, (tuple, list)):
        if len(recorded) != len(replayed):
            return where + " length", len(recorded), len(replayed)
        for i, (a, b) in enumerate(zip(recorded, replayed)):
            diff = first_difference(a, b, f"{path}[{i}]")
            if diff is not None:
                return diff
        return None
    return None if recorded == replayed else (where, recorded, replayed)


def _array_difference(a: np.ndarray, b: np.ndarray, path: str) -> tuple[str, object, object] | None:
    if a.dtype != b.dtype:
        return path + " dtype", str(a.dtype), str(b.dtype)
    if a.shape != b.shape:
        return path + " shape", a.shape, b.shape
    if a.size == 0:
        return None
    width = a.dtype.itemsize
    # Compare element bytes, vectorised: one row of `width` bytes per element.
    rows_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(-1, width)
    rows_b = np.ascontiguousarray(b).reshape(-1).view(np.uint8).reshape(-1, width)
    differs = np.flatnonzero((rows_a != rows_b).any(axis=1))
    if differs.size == 0:
        return None
    at = np.unravel_index(int(differs[0]), a.shape)
    index = ", ".join(str(int(i)) for i in at)
    return f"{path}[{index}]", a[at].item(), b[at].item()
