"""Merging duplicate tracks of one object.

Two sensors that measure different points of one car (a lidar box centre, a camera's bottom edge,
a radar cluster on the near face) can, despite the bias models, leave two tracks on it: one born
before the other's measurements gated. Two real objects never overlap, so two tracks whose
centres lie inside each other's boxes (grown by a margin) are one object. The better-supported
track survives: confirmed before tentative, then more hits, then the older id, so the identity a
consumer has seen longest is the one kept. The test is batched over all pairs; only pairs within
reach of each other in x and y (the largest box length, or grown half-diagonal where that is
larger) are examined exactly.
"""
from __future__ import annotations

import math

import numpy as np

from core.jit import kernel


def _inside(offset: np.ndarray, yaw: np.ndarray, half_lw: np.ndarray) -> np.ndarray:
    """Whether map ``offset`` (K, 2) lies in the box of heading ``yaw`` (K,) and half size (K, 2)."""
    c, s = np.cos(yaw), np.sin(yaw)
    along = np.abs(c * offset[:, 0] + s * offset[:, 1])
    across = np.abs(-s * offset[:, 0] + c * offset[:, 1])
    return (along <= half_lw[:, 0]) & (across <= half_lw[:, 1])


def _near_pairs(xy: np.ndarray, reach_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, each once, with |dx| and |dy| within ``reach_m`` (and a few
    more, which the box test rejects). Tracks are sorted on a key of (row, x), rows ``reach_m``
    tall: a partner lies in the track's own row, after it in key order, or in the row above.
    An x-only sweep paired every lane's cars lined up in one x column (~300 pairs for 100 tracks
    in ten lanes, none of them close); rows leave those out, and usually nothing is left."""
    x, y = xy[:, 0], xy[:, 1]
    # One row's stretch of the key: wider than the x extent plus two reaches, so a window never
    # reaches a row other than the one it is meant for.
    band = float(np.fmax.reduce(x)) - float(np.fmin.reduce(x)) + 2.0 * reach_m + 1.0
    if reach_m > 0.0 and math.isfinite(band):
        key = np.floor(y * (1.0 / reach_m)) * band + x
    else:  # no usable row height: one row, keyed on x
        key, band = x, math.inf
    order = np.argsort(key, kind="stable")
    ks = key[order]
    pos = np.arange(ks.shape[0])
    # Own row: the tracks after this one up to reach_m further on. Row above: a window about x.
    count = ks.searchsorted(ks + reach_m, side="right") - (pos + 1)
    if math.isfinite(band):
        up = ks + band
        lo_up = ks.searchsorted(up - reach_m, side="left")
        count_up = ks.searchsorted(up + reach_m, side="right") - lo_up
    else:
        lo_up = count_up = np.zeros_like(count)
    if not (count.any() or count_up.any()):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # Each sorted track's candidates: its own-row run starting at a + 1, then its upper-row run.
    start = np.stack([pos + 1, lo_up], axis=1).ravel()
    runs = np.stack([count, count_up], axis=1).ravel()
    a = np.repeat(np.repeat(pos, 2), runs)
    b = np.arange(a.shape[0]) + np.repeat(start - (np.cumsum(runs) - runs), runs)
    ii, jj = order[a], order[b]
    close = np.abs(xy[ii, 1] - xy[jj, 1]) <= reach_m
    return ii[close], jj[close]


# The certificate of ``_apart``: cells this many reaches wide (above 2, so that two points closer
# than 1.25 reaches share a cell in one of the grids), over coordinates within this many reaches
# of the origin (there the rounding of the cells, and of _near_pairs' keys, stays far below the
# margins the proof allows).
_CELL_REACHES = 2.5
_MAX_REACHES = 2.0**14
# Packs a cell's (x, y) indices, both below 2^15 in magnitude under _MAX_REACHES, into one exact key.
_KEY_STRIDE = 2.0**16


@kernel("boolean(float64[:, :], float64)")
def _apart(xy, reach_m):
    """True when no two rows of ``xy`` (N, 2) are within ``reach_m`` of each other in x and in y
    (nor within rounding of that): then ``_near_pairs`` finds no pair. False decides nothing.

    Four grids of square cells 2.5 reaches wide, offset by half a cell in x, in y or both: along
    one axis two points less than half a cell apart lie in one cell of the whole-cell or of the
    half-cell cut (the two cuts alternate every half cell), so two points within 1.25 reaches in
    both axes share a cell in one of the four grids. No shared cell in any grid is therefore a
    certificate, found with one sort per grid instead of _near_pairs' windowed search.
    """
    if not (0.0 < reach_m < math.inf):
        return False  # no usable cell size
    n = xy.shape[0]
    for i in range(n):
        for axis in range(2):
            if not abs(xy[i, axis]) < _MAX_REACHES * reach_m:
                return False  # coordinates too large (or NaN) for exact keys
    inv_cell = 1.0 / (_CELL_REACHES * reach_m)
    keys = np.empty(n)
    for x_shift in (0.0, 0.5):
        for y_shift in (0.0, 0.5):
            for i in range(n):
                keys[i] = (np.floor(xy[i, 0] * inv_cell + x_shift) * _KEY_STRIDE
                           + np.floor(xy[i, 1] * inv_cell + y_shift))
            keys.sort()
            for i in range(1, n):
                if keys[i] == keys[i - 1]:
                    return False
    return True


@kernel("boolean(float64, float64, float64, float64, float64, float64)")
def _inside_box(offset_x, offset_y, cos_yaw, sin_yaw, half_length, half_width):
    """``_inside`` of one offset [m] and box, operation for operation."""
    along = abs(cos_yaw * offset_x + sin_yaw * offset_y)
    across = abs(-sin_yaw * offset_x + cos_yaw * offset_y)
    return along <= half_length and across <= half_width


@kernel("boolean(float64[:, :], Array(float64, 1, 'A', readonly=True), Array(float64, 2, 'A', readonly=True),"
        " float64)")
def any_overlap(xy, yaw, size, margin_m):
    """Whether some two tracks' centres lie inside each other's boxes grown by ``margin_m``:
    ``duplicates``' box test, operation for operation (sin and cos are the C library's, as
    numpy's float64 ones are here), over every pair rather than the near ones it examines. The
    test is symmetric (an offset and its negation round alike), so False here means that
    ``duplicates`` drops nothing; True decides nothing."""
    n = xy.shape[0]
    c, s = np.empty(n), np.empty(n)
    for i in range(n):
        c[i], s[i] = math.cos(yaw[i]), math.sin(yaw[i])
    for i in range(n):
        half_length_i, half_width_i = 0.5 * size[i, 0] + margin_m, 0.5 * size[i, 1] + margin_m
        for j in range(i + 1, n):
            dx, dy = xy[j, 0] - xy[i, 0], xy[j, 1] - xy[i, 1]
            if (_inside_box(dx, dy, c[i], s[i], half_length_i, half_width_i)
                    and _inside_box(dx, dy, c[j], s[j], 0.5 * size[j, 0] + margin_m,
                                    0.5 * size[j, 1] + margin_m)):
                return True
    return False


def duplicates(xy: np.ndarray, yaw: np.ndarray, size: np.ndarray, confirmed: np.ndarray,
               hits: np.ndarray, ids: np.ndarray, margin_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(dropped (N,) bool, absorbed_by (N,) int64): tracks that duplicate a better one, and for
    each dropped track the index of the track that absorbs it (-1 where not dropped)."""
    n = xy.shape[0]
    dropped = np.zeros(n, bool)
    absorbed_by = np.full(n, -1, np.int64)
    if n < 2:
        return dropped, absorbed_by
    # A partner's centre lies in the track's grown box, so at most its half-diagonal away in x
    # and in y; the largest box length plus the margin covers that for boxes longer than wide
    # (every car), not for one wider than long or a large margin on small rotated boxes.
    half_diagonal_m = float(np.fmax.reduce(np.hypot(0.5 * size[:, 0] + margin_m, 0.5 * size[:, 1] + margin_m)))
    reach_m = max(float(size[:, 0].max()) + margin_m, half_diagonal_m)
    if _apart(xy, reach_m):  # the rule in traffic: no pair to examine
        return dropped, absorbed_by
    ii, jj = _near_pairs(xy, reach_m)
    if ii.size == 0:
        return dropped, absorbed_by
    half = 0.5 * size[:, :2] + margin_m
    off = xy[jj] - xy[ii]
    same = _inside(off, yaw[ii], half[ii]) & _inside(off, yaw[jj], half[jj])
    ii, jj = ii[same], jj[same]
    if ii.size == 0:
        return dropped, absorbed_by
    # Rank: confirmed first, then more hits, then the smaller (older) id.
    rank = np.lexsort((ids, -hits.astype(np.int64), ~confirmed))
    order = np.empty(n, np.int64)
    order[rank] = np.arange(n)
    i_wins = order[ii] < order[jj]
    winner, loser = np.where(i_wins, ii, jj), np.where(i_wins, jj, ii)
    # Resolve the best survivors first so a chain A~B~C keeps A and drops B and C into it.
    by_winner = np.argsort(order[winner], kind="stable")
    winner, loser = winner[by_winner], loser[by_winner]
    absorbed_by[loser[::-1]] = winner[::-1]  # the best winner of each loser is written last
    dropped[loser] = True
    # A dropped winner passes what it absorbed on to its own absorber.
    while True:
        parent = absorbed_by[np.maximum(absorbed_by, 0)]
        chain = (absorbed_by >= 0) & (parent >= 0)
        if not chain.any():
            break
        absorbed_by[chain] = parent[chain]
    return dropped, absorbed_by
