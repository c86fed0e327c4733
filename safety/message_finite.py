"""Whether a message's data is finite: every float field and every element of every float array.

The health monitor counts a message with a NaN or an infinity as bad data (safety/health.py
``observe(finite=...)``); the stack asks this of every message it delivers, so its cost matters
more than its arithmetic (see ``message_finite``).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, Callable

import numba
import numpy as np
from numba import literal_unroll, types

from core import messages
from core.jit import kernel


def message_finite(msg: Any) -> bool:
    """True if every float field and every element of every float array field of a (slotted)
    message is finite; other fields are not data and are skipped.

    Runs for every message of the stack (~370 a second in an oracle run), on arrays of a few to a
    few hundred elements: numpy's per-call cost, not the arithmetic, decides the time. A core
    message with float arrays goes through its type's ``_MessageLayout`` (``_layout_finite``: its
    fields in one C call, its float arrays in one compiled call), which gives the verdict of the
    general way below for every message.

    The general way reads each slot by the type of its value: each float array is flattened, all
    are copied into one float64 buffer (a float32 or float64 value keeps its finiteness) and one
    compiled pass reads it. A float scalar is checked as it is met; a field of a type that is never
    data (a stamp, a name, a flag, a map) is passed by one set lookup."""
    layout = _LAYOUTS.get(type(msg))
    if layout is not None:
        return _layout_finite(msg, layout)
    return _message_finite_any(msg)


def _message_finite_any(msg: Any) -> bool:
    """``message_finite`` the general way, for any object (see there)."""
    arrays = []
    for name in getattr(msg, "__slots__", ()):
        v = getattr(msg, name)
        if type(v) in _NEVER_DATA:
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                return False
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            arrays.append(v.ravel())
    if not arrays:
        return True
    return _all_finite(np.concatenate(arrays, dtype=np.float64))


def _layout_finite(msg: Any, layout: "_MessageLayout") -> bool:
    """``message_finite`` of a message of ``layout``'s type: when every field holds the type it is
    declared with and every array its declared kind (float or not), the declared float scalars and
    the float arrays are all the data there is. Anything else (a field of an unexpected type, an
    array of another dtype or rank) goes the general way."""
    values = layout.values(msg)
    if tuple(map(type, values)) != layout.types:
        return _message_finite_any(msg)
    for i in layout.other_arrays:
        if values[i].dtype.kind == "f":  # data where the type declares none
            return _message_finite_any(msg)
    for i in layout.floats:
        if not math.isfinite(values[i]):
            return False
    try:
        return _arrays_finite(*layout.float_arrays(values))
    except TypeError:  # not the declared dtypes and ranks: the compiled call has no form for them
        return _message_finite_any(msg)


# Exact types (not subclasses) that are neither a float nor an array: skipped without isinstance.
_NEVER_DATA = frozenset({int, bool, str, bytes, dict, type(None)})


@kernel("boolean(float64[::1])")
def _all_finite(values):
    for v in values:
        if not math.isfinite(v):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _MessageLayout:
    """One core message type's fields as ``message_finite`` reads them: all its slots in one call,
    the type each is declared with, which of them are float scalars, and its arrays: the float
    ones (by their positions, in one call) and the others. A value of exactly its declared type is
    data if and only if it is a float or a float array (a stamp, a name, a flag, a mode, limits or
    a map never are), which is what ``_message_finite_any`` decides value by value."""

    values: Callable[[Any], tuple]
    types: tuple[type, ...]
    floats: tuple[int, ...]
    float_arrays: Callable[[tuple], tuple]
    other_arrays: tuple[int, ...]


def _array_type(dtype: type, ndim: int) -> types.Array:
    """Any layout, writable or not: world truth reaches the messages as read-only views."""
    return types.Array(numba.from_dtype(np.dtype(dtype)), ndim, "A", readonly=True)


def _layouts() -> tuple[dict[type, _MessageLayout], list]:
    """The layout of every slotted message type of core/messages.py with float arrays (a fixed
    table, built at import from the types' declarations and ``ARRAY_FIELDS``), and the signatures
    of ``_arrays_finite``: one per type, its float arrays' dtypes and ranks in field order."""
    layouts, signatures = {}, []
    for cls in vars(messages).values():
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == messages.__name__):
            continue
        slots = tuple(getattr(cls, "__slots__", ()))
        hints = typing.get_type_hints(cls)
        declared = tuple(typing.get_origin(hints[name]) or hints[name] for name in slots)
        # Two or more slots (attrgetter then returns a tuple), each declared as a plain class, and
        # none as a kind of float or array but float and ndarray themselves.
        if len(slots) < 2 or not all(isinstance(t, type) and (t in (float, np.ndarray) or not issubclass(
                t, (float, np.ndarray))) for t in declared):
            continue
        arrays = messages.ARRAY_FIELDS.get(cls, {})
        float_positions, other_positions, float_types = [], [], []
        for i, (name, t) in enumerate(zip(slots, declared)):
            if t is not np.ndarray:
                continue
            dtype, ndim = arrays[name]
            if np.dtype(dtype).kind == "f":
                float_positions.append(i)
                float_types.append(_array_type(dtype, ndim))
            else:
                other_positions.append(i)
        if not float_types:
            continue  # a few scalars at most: the general way reads them as fast
        signature = types.boolean(types.Tuple(tuple(float_types)))
        if signature not in signatures:  # ImuSample's and GnssFix's are one
            signatures.append(signature)
        # A slice keeps a single position a 1-tuple (itemgetter of one index gives the bare value).
        pick = (itemgetter(*float_positions) if len(float_positions) > 1
                else itemgetter(slice(float_positions[0], float_positions[0] + 1)))
        layouts[cls] = _MessageLayout(attrgetter(*slots), declared,
                                      tuple(i for i, t in enumerate(declared) if t is float), pick,
                                      tuple(other_positions))
    return layouts, signatures


_LAYOUTS, _ARRAYS_SIGNATURES = _layouts()


@kernel(_ARRAYS_SIGNATURES)
def _arrays_finite(*arrays):
    """True if every element of every array is finite: one compiled form per message type's float
    arrays (``_LAYOUTS``)."""
    for values in literal_unroll(arrays):
        for v in values.flat:
            if not math.isfinite(v):
                return False
    return True
