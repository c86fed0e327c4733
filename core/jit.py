"""Compiled scalar kernels: numba's ``njit`` with the settings every rtdrive kernel shares.

Where a hot path is a few hundred tiny numpy calls (4x4 filters over 100 tracks, a 21-step scalar
roll-out), numpy's per-call overhead, not the arithmetic, is the cost; a kernel compiled by numba
(LLVM) runs the same arithmetic as one loop. The settings keep kernels faithful to the numpy or
Python code they replace:

- ``fastmath=False``: IEEE rounding after every operation, no contraction of ``a * b + c`` into a
  fused multiply-add, no reassociation. A kernel that performs the reference's operations in the
  reference's order gives its bits, which is how each kernel is tested and how a speed change is
  checked against recorded runs (DESIGN.md, "fast paths must give the general path's bits").
- ``error_model="numpy"``: a division by zero gives inf or NaN as numpy does, never an exception
  from inside a kernel.
- an explicit signature (or a list of them): the kernel compiles once, at import, for exactly
  those types. A call with other types is a TypeError, never a silent recompilation in the middle
  of a real-time loop.
- ``cache=True``: the machine code is kept beside the module (``__pycache__``); only the first
  import after a change compiles (about a second per kernel), later imports load it.
"""
from __future__ import annotations

from typing import Any, Callable

import numba


def kernel(signature: Any) -> Callable[[Callable], Callable]:
    """Decorator: compile a function with numba for ``signature`` (numba's signature syntax or a
    numba signature object), or for each of a list of them."""
    return numba.njit(signature, cache=True, nogil=True, fastmath=False, error_model="numpy")
