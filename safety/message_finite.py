"""Whether a message's data is finite: every float field and every element of every float array.

The health monitor counts a message with a NaN or an infinity as bad data (safety/health.py
``observe(finite=...)``); the stack asks this of every message it delivers, so its cost matters
more than its arithmetic (see ``message_finite``).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from operator import attrgetter
from typing import Any, Callable

import numba
import numpy as np
from numba import types

from core import messages
from core.jit import kernel


def message_finite(msg: Any) -> bool:
    """True if every float field and every element of every float array field of a (slotted)
    message is finite; other fields are not data and are skipped.

    Runs for every message of the stack (~370 a second in an oracle run), on arrays of a few to a
    few hundred elements: Python's and numpy's per-call costs, not the arithmetic, decide the time.
    A core message goes through its type's checker (``_CHECKERS``: its fields read in one C call,
    each tested for exactly its declared type, its float scalars tested in line and its float
    arrays in one compiled call), which gives the verdict of the general way below for every
    message.

    The general way reads each slot by the type of its value: each float array is flattened, all
    are copied into one float64 buffer (a float32 or float64 value keeps its finiteness) and one
    compiled pass reads it. A float scalar is checked as it is met; a field of a type that is never
    data (a stamp, a name, a flag, a map) is passed by one set lookup."""
    check = _CHECKERS.get(type(msg))
    if check is not None:
        return check(msg)
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


# Exact types (not subclasses) that are neither a float nor an array: skipped without isinstance.
_NEVER_DATA = frozenset({int, bool, str, bytes, dict, type(None)})


@kernel("boolean(float64[::1])")
def _all_finite(values):
    for v in values:
        if not math.isfinite(v):
            return False
    return True


_MOST_FLOAT_ARRAYS = 6  # the compiled forms below take 1 to 6 arrays


def _array_type(dtype: type, ndim: int) -> types.Array:
    """Any layout, writable or not: world truth reaches the messages as read-only views."""
    return types.Array(numba.from_dtype(np.dtype(dtype)), ndim, "A", readonly=True)


@dataclasses.dataclass(frozen=True, slots=True)
class _Layout:
    """One core message type's fields as its checker reads them: the type each slot is declared
    with, and the positions of its float scalars, float arrays and other arrays. A value of exactly
    its declared type is data if and only if it is a float or a float array (a stamp, a name, a
    flag, a mode, limits or a map never are), which is what ``_message_finite_any`` decides value
    by value."""

    cls: type
    declared: tuple[type, ...]
    floats: tuple[int, ...]
    float_arrays: tuple[int, ...]
    other_arrays: tuple[int, ...]
    float_array_types: tuple[types.Array, ...]  # the dtypes and ranks ARRAY_FIELDS declares


def _layouts() -> list[_Layout]:
    """The layout of every slotted message type of core/messages.py whose fields are each declared
    as a plain class (a fixed table, built at import from the types' declarations and
    ``ARRAY_FIELDS``)."""
    layouts = []
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
        if len(float_positions) > _MOST_FLOAT_ARRAYS:
            raise TypeError(f"{cls.__name__}: {len(float_positions)} float arrays, the checkers take at most "
                            f"{_MOST_FLOAT_ARRAYS}: add a form (_arrays_finite_<n>)")
        layouts.append(_Layout(cls, declared, tuple(i for i, t in enumerate(declared) if t is float),
                               tuple(float_positions), tuple(other_positions), tuple(float_types)))
    return layouts


def _checker(layout: _Layout, arrays_finite: tuple[Callable, ...]) -> Callable[[Any], bool]:
    """``message_finite`` for messages of ``layout``'s type, as one function written for it (as
    dataclasses writes a class's ``__init__``): the fields unpacked, every field's exact type
    tested (and every non-float array's dtype kind), then the float scalars, then the float arrays
    in one compiled call. Anything else (a field of another type, an array of another dtype or
    rank: the compiled call's TypeError) goes the general way."""
    n = len(layout.declared)
    names = [f"v{i}" for i in range(n)]
    namespace: dict[str, Any] = {"_values": attrgetter(*layout.cls.__slots__), "_general": _message_finite_any,
                                 "_isfinite": math.isfinite}
    tests = []
    for i, t in enumerate(layout.declared):
        namespace[f"_T{i}"] = t
        tests.append(f"type(v{i}) is _T{i}")
    tests += [f'v{i}.dtype.kind != "f"' for i in layout.other_arrays]  # data where the type declares none
    finite = [f"_isfinite(v{i})" for i in layout.floats]
    body = [f"{', '.join(names)} = _values(msg)",
            f"if not ({' and '.join(tests)}):",
            "    return _general(msg)"]
    if finite:
        body += [f"if not ({' and '.join(finite)}):", "    return False"]
    if layout.float_arrays:
        namespace["_arrays_finite"] = arrays_finite[len(layout.float_arrays) - 1]
        body += ["try:",
                 f"    return _arrays_finite({', '.join(f'v{i}' for i in layout.float_arrays)})",
                 "except TypeError:  # not the declared dtypes and ranks: the compiled call has no form for them",
                 "    return _general(msg)"]
    else:
        body.append("return True")
    source = "def check(msg):\n    " + "\n    ".join(body) + "\n"
    exec(source, namespace)  # noqa: S102 - source built above from the message type's own declarations
    check = namespace["check"]
    check.__qualname__ = check.__name__ = f"message_finite_{layout.cls.__name__}"
    return check


_LAYOUTS = _layouts()


def _signatures_of(n_arrays: int) -> list:
    """The signatures of the compiled form for ``n_arrays`` float arrays: one per message type
    that has that many (their dtypes and ranks in field order; ImuSample's and GnssFix's are one).
    A form no message type uses yet still compiles, for float64 vectors."""
    signatures = []
    for layout in _LAYOUTS:
        signature = types.boolean(*layout.float_array_types)
        if len(layout.float_array_types) == n_arrays and signature not in signatures:
            signatures.append(signature)
    return signatures or [types.boolean(*[_array_type(np.float64, 1)] * n_arrays)]


# Every float array type of the messages, for the element loop the forms below share.
_ELEMENT_SIGNATURES = sorted({types.boolean(t) for layout in _LAYOUTS for t in layout.float_array_types}, key=str)


@kernel(_ELEMENT_SIGNATURES)
def _finite_elements(values):
    for v in values.flat:
        if not math.isfinite(v):
            return False
    return True


# One compiled form per number of float arrays: positional arrays, because a kernel taking
# ``*arrays`` types its argument tuple in Python at every call (twice the cost of two arrays).
@kernel(_signatures_of(1))
def _arrays_finite_1(a):
    return _finite_elements(a)


@kernel(_signatures_of(2))
def _arrays_finite_2(a, b):
    return _finite_elements(a) and _finite_elements(b)


@kernel(_signatures_of(3))
def _arrays_finite_3(a, b, c):
    return _finite_elements(a) and _finite_elements(b) and _finite_elements(c)


@kernel(_signatures_of(4))
def _arrays_finite_4(a, b, c, d):
    return _finite_elements(a) and _finite_elements(b) and _finite_elements(c) and _finite_elements(d)


@kernel(_signatures_of(5))
def _arrays_finite_5(a, b, c, d, e):
    return (_finite_elements(a) and _finite_elements(b) and _finite_elements(c) and _finite_elements(d)
            and _finite_elements(e))


@kernel(_signatures_of(6))
def _arrays_finite_6(a, b, c, d, e, f):
    return (_finite_elements(a) and _finite_elements(b) and _finite_elements(c) and _finite_elements(d)
            and _finite_elements(e) and _finite_elements(f))


_ARRAYS_FINITE = (_arrays_finite_1, _arrays_finite_2, _arrays_finite_3, _arrays_finite_4, _arrays_finite_5,
                  _arrays_finite_6)
_CHECKERS: dict[type, Callable[[Any], bool]] = {layout.cls: _checker(layout, _ARRAYS_FINITE) for layout in _LAYOUTS}
