"""numpy's np.interp as compiled helpers (core/jit.py), for kernels that sample a previous plan.

Each np.interp call costs a few microseconds of set-up around a few dozen multiply-adds; the planner
made three a plan (the previous plan's lateral offset, its lateral and its longitudinal
acceleration). These helpers follow numpy's C loop (numpy/_core/src/multiarray/compiled_base.c,
``arr_interp`` and ``binary_search_with_guess``) step for step, so they give its bits, NaN and
out-of-range samples included: tests/planning/test_interp.py checks them against np.interp.
"""
from __future__ import annotations

import numpy as np

from core.jit import kernel

_VECTOR = "Array(float64, 1, 'A', readonly=True)"
# numpy's LIKELY_IN_CACHE_SIZE: how far from the guess the search first looks.
_LIKELY_IN_CACHE_SIZE = 8


@kernel(f"int64(float64, {_VECTOR}, int64)")
def search_with_guess(key, xp, guess):
    """numpy's binary_search_with_guess: -1 below xp[0], len(xp) above xp[-1], else the index j
    with xp[j] <= key < xp[j + 1] (len - 1 at xp[-1]) found from ``guess`` as numpy finds it (for
    increasing xp the answer is unique; numpy's path is kept for any xp)."""
    n = xp.shape[0]
    imin, imax = 0, n
    if key > xp[n - 1]:
        return n
    if key < xp[0]:
        return -1
    if n <= 4:  # linear search; key >= xp[0] here
        i = 1
        while i < n and key >= xp[i]:
            i += 1
        return i - 1
    if guess > n - 3:
        guess = n - 3
    if guess < 1:
        guess = 1
    if key < xp[guess]:
        if key < xp[guess - 1]:
            imax = guess - 1
            if guess > _LIKELY_IN_CACHE_SIZE and key >= xp[guess - _LIKELY_IN_CACHE_SIZE]:
                imin = guess - _LIKELY_IN_CACHE_SIZE
        else:
            return guess - 1
    else:
        if key < xp[guess + 1]:
            return guess
        if key < xp[guess + 2]:
            return guess + 1
        imin = guess + 2
        if guess < n - _LIKELY_IN_CACHE_SIZE - 1 and key < xp[guess + _LIKELY_IN_CACHE_SIZE]:
            imax = guess + _LIKELY_IN_CACHE_SIZE
    while imin < imax:
        imid = imin + ((imax - imin) >> 1)
        if key >= xp[imid]:
            imin = imid + 1
        else:
            imax = imid
    return imin - 1


@kernel(f"float64(float64, {_VECTOR}, {_VECTOR}, int64)")
def interp_at(x, xp, fp, j):
    """np.interp's value at ``x`` for the search result ``j`` (search_with_guess) with numpy's
    default ends (fp[0] below, fp[-1] above); xp and fp of equal length >= 2."""
    n = xp.shape[0]
    if x != x:
        return x
    if j == -1:
        return fp[0]
    if j == n:
        return fp[n - 1]
    if j == n - 1 or xp[j] == x:
        return fp[j]  # numpy: avoids a non-finite interpolation at a sample
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    y = slope * (x - xp[j]) + fp[j]
    if y != y:  # NaN one way: numpy tries from the other end, then a flat segment's value
        y = slope * (x - xp[j + 1]) + fp[j + 1]
        if y != y and fp[j] == fp[j + 1]:
            y = fp[j]
    return y


@kernel(f"float64(float64, {_VECTOR}, {_VECTOR})")
def interp_one(x, xp, fp):
    """float(np.interp(x, xp, fp)) for one sample; xp and fp of equal length >= 2."""
    return interp_at(x, xp, fp, search_with_guess(x, xp, 0))


@kernel(f"void({_VECTOR}, {_VECTOR}, {_VECTOR}, float64[::1])")
def interp_into(x, xp, fp, out):
    """np.interp(x, xp, fp) into ``out`` (len(x),); xp and fp of equal length >= 2. The search's
    guess carries from one sample to the next, as numpy's does."""
    j = 0
    for i in range(x.shape[0]):
        if x[i] != x[i]:
            out[i] = x[i]
            continue
        j = search_with_guess(x[i], xp, j)
        out[i] = interp_at(x[i], xp, fp, j)


def interp_value(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """float(np.interp(x, xp, fp)): compiled for float64 xp and fp of one equal length >= 2 (a plan's
    profiles), numpy's own call otherwise (a single sample, other types, its errors)."""
    n = xp.shape[0]
    if n >= 2 and fp.shape == (n,) and xp.ndim == 1 and xp.dtype == np.float64 and fp.dtype == np.float64:
        return interp_one(float(x), xp, fp)
    return float(np.interp(x, xp, fp))
