"""Products of small dense matrices inside compiled kernels (core/jit.py), into caller-owned arrays.

The EKF kernels (fusion/ego_ekf_kernels.py, fusion/polar_kernels.py) multiply 6x6, 4x3 and 3x3
matrices, several per track: writing into preallocated arrays keeps the allocations out of their
per-track loops. Each entry is summed in index order from 0.0 with no fused multiply-add (the
kernel settings), so a product's bits depend on its operands alone.

Inputs may be read-only views (a message's arrays, a track's rows of a read-only stack); the
output must not alias an input.
"""
from __future__ import annotations

from numba import types

from core.jit import kernel

_IN = types.Array(types.float64, 2, "A", readonly=True)
_OUT = types.Array(types.float64, 2, "A")


@kernel(types.void(_IN, _IN, _OUT))
def mul_into(a, b, out):
    """out = a @ b, for a (m, k), b (k, n), out (m, n). For a @ b.T pass the view ``b.T``: the
    products and their order are those of a loop over b's rows, with no copy."""
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            acc = 0.0
            for q in range(a.shape[1]):
                acc += a[i, q] * b[q, j]
            out[i, j] = acc
