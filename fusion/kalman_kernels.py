"""Compiled kernels of the tracker's Kalman hot path (core/jit.py): the constant-velocity predict,
the leading-components update and the covariance check, one call each over every track.

Each loops over tracks and performs, per track, the operations of the numpy block algebra it
replaced, in the same order, so it gives the same bits (tests/fusion/test_fusion_kalman_kernels.py
holds that numpy algebra as the reference). Two orders matter: numpy's sum over a short outer axis
adds sequentially from its identity, ((0 + a0) + a1) + ..., which turns a lone -0.0 into +0.0; and
adding a zero entry of a matrix still happens (x + 0.0 is +0.0 for x = -0.0).

Inputs are taken in any layout (numba's ``A`` arrays: the tracker hands out N-major views of
component-major arrays); outputs are fresh component-major arrays, x as (n, N) and P as
(n, n, N), whose N-major views (``.T``, ``.transpose(2, 0, 1)``) the callers return.
"""
from __future__ import annotations

import math

import numpy as np

from core.jit import kernel


@kernel("void(float64[:, :, :], int64, float64, float64[:, ::1])")
def _cv_propagate_covariance(p, i, dt_s, b):
    """F P F^T of track ``i``'s covariance into ``b`` (4, 4), by blocks: P's position rows += dt
    velocity rows, then its position columns += dt velocity columns. The one sequence of operations
    every constant-velocity predict kernel performs, so all give the same bits."""
    for r in range(4):
        for c in range(4):
            b[r, c] = p[i, r, c]
    for r in range(2):
        for c in range(4):
            b[r, c] += dt_s * b[r + 2, c]
    for r in range(4):
        for c in range(2):
            b[r, c] += dt_s * b[r, c + 2]


@kernel("Tuple((float64[:, ::1], float64[:, :, ::1]))(float64[:, :], float64[:, :, :], float64,"
        " float64[:, ::1])")
def cv_predict_rows(x, p, dt_s, q):
    """Constant-velocity predict of x (N, 4), P (N, 4, 4) by dt_s [s] with process noise q (4, 4):
    positions += dt velocities, then P's position rows += dt velocity rows, then its position
    columns += dt velocity columns (F P F^T by blocks), then + q (every entry, zeros included).
    Returns component-major x' (4, N) and P' (4, 4, N)."""
    n = x.shape[0]
    xt = np.empty((4, n))
    pt = np.empty((4, 4, n))
    b = np.empty((4, 4))
    for i in range(n):
        xt[0, i] = x[i, 0] + dt_s * x[i, 2]
        xt[1, i] = x[i, 1] + dt_s * x[i, 3]
        xt[2, i] = x[i, 2]
        xt[3, i] = x[i, 3]
        _cv_propagate_covariance(p, i, dt_s, b)
        for r in range(4):
            for c in range(4):
                pt[r, c, i] = b[r, c] + q[r, c]
    return xt, pt


@kernel("void(float64[:, :], float64[:, :, :], float64, float64, float64, float64, float64[:, ::1],"
        " float64[:, :, ::1])")
def cv_predict_into(x, p, dt_s, q_pos, q_pos_vel, q_vel, xo, po):
    """``cv_predict_rows``' operations, x' (N, 4) and P' (N, 4, 4) written N-major into ``xo``,
    ``po`` (C-contiguous, as a copy of cv_predict_rows' N-major views would be), with the process
    noise given by its three distinct entries (``kalman.cv_process_noise`` times the spectral
    density: position, position-velocity and velocity; every other entry is 0.0 and is added all
    the same)."""
    n = x.shape[0]
    q = np.zeros((4, 4))
    q[0, 0] = q[1, 1] = q_pos
    q[0, 2] = q[2, 0] = q[1, 3] = q[3, 1] = q_pos_vel
    q[2, 2] = q[3, 3] = q_vel
    b = np.empty((4, 4))
    for i in range(n):
        xo[i, 0] = x[i, 0] + dt_s * x[i, 2]
        xo[i, 1] = x[i, 1] + dt_s * x[i, 3]
        xo[i, 2] = x[i, 2]
        xo[i, 3] = x[i, 3]
        _cv_propagate_covariance(p, i, dt_s, b)
        for r in range(4):
            for c in range(4):
                po[i, r, c] = b[r, c] + q[r, c]


@kernel("Tuple((float64[:, ::1], float64[:, :, ::1]))(float64[:, :], float64[:, :, :], float64,"
        " float64, float64, float64)")
def cv_predicted_tracks(x, p, dt_s, q_pos, q_pos_vel, q_vel):
    """``cv_predict_into`` into fresh arrays: x' (N, 4), P' (N, 4, 4)."""
    n = x.shape[0]
    xo = np.empty((n, 4))
    po = np.empty((n, 4, 4))
    cv_predict_into(x, p, dt_s, q_pos, q_pos_vel, q_vel, xo, po)
    return xo, po


@kernel("int64(float64[:, :], float64[:, :, :], float64, float64, float64, float64, float64[:, :], boolean[:],"
        " Array(int64, 1, 'A', readonly=True), Array(float64, 1, 'A', readonly=True),"
        " Array(float64, 2, 'A', readonly=True), Array(float64, 1, 'A', readonly=True),"
        " float64[:, ::1], float64[:, :, ::1], int16[::1], int64[::1], float64[::1], float64[:, ::1], float64[::1])")
def cv_track_output(x, p, dt_s, q_pos, q_pos_vel, q_vel, class_loglik, confirmed, ids, yaw, size, existence,
                    xo, po, labels, ids_out, yaw_out, size_out, existence_out):
    """The tracker's output in one call, for its ``confirmed`` tracks, in track order, into the
    leading rows of the caller's arrays (one row per track): ``cv_predict_into``'s x' and P' into
    ``xo``, ``po``; each track's label, the argmax of its class log-likelihood row (numpy's: the
    first maximum, or the first NaN where there is one), into ``labels``; copies of its id, box
    yaw, size and existence. Returns how many tracks are confirmed. A returned array costs numba
    about a microsecond to box, np.empty a fifth of that."""
    n = x.shape[0]
    n_confirmed = 0
    for i in range(n):
        if confirmed[i]:
            n_confirmed += 1
    if n_confirmed == n:  # the steady state
        cv_predict_into(x, p, dt_s, q_pos, q_pos_vel, q_vel, xo, po)
    else:
        x_all, p_all = np.empty((n, 4)), np.empty((n, 4, 4))
        cv_predict_into(x, p, dt_s, q_pos, q_pos_vel, q_vel, x_all, p_all)
        k = 0
        for i in range(n):
            if confirmed[i]:
                for r in range(4):
                    xo[k, r] = x_all[i, r]
                    for c in range(4):
                        po[k, r, c] = p_all[i, r, c]
                k += 1
    k = 0
    for i in range(n):
        if not confirmed[i]:
            continue
        best = 0
        best_v = class_loglik[i, 0]
        for c in range(1, class_loglik.shape[1]):
            if best_v != best_v:
                break  # a NaN is numpy's maximum: the first one wins
            v = class_loglik[i, c]
            if v > best_v or v != v:
                best, best_v = c, v
        labels[k] = best
        ids_out[k] = ids[i]
        yaw_out[k] = yaw[i]
        for c in range(size.shape[1]):
            size_out[k, c] = size[i, c]
        existence_out[k] = existence[i]
        k += 1
    return n_confirmed


@kernel("Tuple((float64[:, ::1], float64[:, :, ::1]))(float64[:, :], float64[:, :, :], float64[:, :],"
        " float64[:, :, :])")
def update_leading_rows(x, p, z, r):
    """Linear update of x (N, n), P (N, n, n) by z (N, m), R (N, m, m), H selecting the first m
    components (``kalman.update_leading``): per track the augmented rows [S | H P | z - H x] with
    S = H P H^T + R are reduced to L^-1 [S | H P | y] (right-looking Cholesky, row by row: subtract
    the finished rows scaled by their entry in this column, divide by the pivot's root), giving
    W = L^-1 H P and v = L^-1 y; then x' = x + W^T v and P' = P - W^T W, each sum over the m
    rows taken in row order from 0. Returns component-major x' (n, N) and P' (n, n, N)."""
    n_trk, n, m = x.shape[0], x.shape[1], z.shape[1]
    width = m + n + 1
    # Component-major scratch, every row op one contiguous loop over the tracks (which LLVM turns
    # into SIMD, divisions and roots included; per track the ops and their order are unchanged).
    rows = np.empty((m, width, n_trk))
    for a in range(m):
        for b in range(m):
            for i in range(n_trk):
                rows[a, b, i] = p[i, a, b] + r[i, a, b]
        for b in range(n):
            for i in range(n_trk):
                rows[a, m + b, i] = p[i, a, b]
        for i in range(n_trk):
            rows[a, m + n, i] = z[i, a] - x[i, a]
    root = np.empty(n_trk)
    for k in range(m):
        for j in range(k):
            for c in range(k, width):
                for i in range(n_trk):
                    rows[k, c, i] -= rows[j, k, i] * rows[j, c, i]
        for i in range(n_trk):
            root[i] = np.sqrt(rows[k, k, i])
        for c in range(k, width):
            for i in range(n_trk):
                rows[k, c, i] /= root[i]
    xt = np.zeros((n, n_trk))
    pt = np.zeros((n, n, n_trk))
    for a in range(n):
        for k in range(m):
            for i in range(n_trk):
                xt[a, i] += rows[k, m + a, i] * rows[k, m + n, i]
        for i in range(n_trk):
            xt[a, i] = x[i, a] + xt[a, i]
        for b in range(n):
            for k in range(m):
                for i in range(n_trk):
                    pt[a, b, i] += rows[k, m + a, i] * rows[k, m + b, i]
            for i in range(n_trk):
                pt[a, b, i] = p[i, a, b] - pt[a, b, i]
    return xt, pt


@kernel("Tuple((float64[:, ::1], float64[:, :, ::1]))(float64[:, :], float64[:, :, :], int64[::1],"
        " float64[:, :], float64[:, :, :], boolean[::1])")
def update_leading_at(x, p, track_idx, z, r, velocity_valid):
    """Copies of x (N, n), P (N, n, n), N-major, in which track ``track_idx[k]`` is updated by
    measurement k (z (K, 4), R (K, 4, 4)): position and velocity where ``velocity_valid[k]``,
    position only elsewhere. Each group goes through ``update_leading_rows`` gathered, so every
    updated track gets that kernel's bits. The tracks are distinct and in range (an
    association's): the kernel, like every one here, does not check indices."""
    n_trk, n = x.shape[0], x.shape[1]
    xo = np.empty((n_trk, n))
    po = np.empty((n_trk, n, n))
    for i in range(n_trk):
        for a in range(n):
            xo[i, a] = x[i, a]
            for b in range(n):
                po[i, a, b] = p[i, a, b]
    for m in (2, 4):
        sel = np.flatnonzero(velocity_valid == (m == 4))
        k_sel = sel.shape[0]
        if k_sel == 0:
            continue
        xs = np.empty((k_sel, n))
        ps = np.empty((k_sel, n, n))
        zs = np.empty((k_sel, m))
        rs = np.empty((k_sel, m, m))
        for k in range(k_sel):
            t, j = track_idx[sel[k]], sel[k]
            for a in range(n):
                xs[k, a] = x[t, a]
                for b in range(n):
                    ps[k, a, b] = p[t, a, b]
            for a in range(m):
                zs[k, a] = z[j, a]
                for b in range(m):
                    rs[k, a, b] = r[j, a, b]
        xt, pt = update_leading_rows(xs, ps, zs, rs)
        for k in range(k_sel):
            t = track_idx[sel[k]]
            for a in range(n):
                xo[t, a] = xt[a, k]
                for b in range(n):
                    po[t, a, b] = pt[a, b, k]
    return xo, po


@kernel("boolean(float64[:, :, ::1], int64, int64, float64, float64[:, ::1])")
def _cholesky_ok(sym, i, n, floor, low):
    """Whether sym[:, :, i] - floor I (n x n) has a Cholesky factor with positive pivots. ``low``
    (n, n) is scratch for the factor: every entry read is written first in the same call."""
    for u in range(n):
        for v in range(u + 1):
            s = sym[u, v, i] - (floor if u == v else 0.0)
            for w in range(v):
                s -= low[u, w] * low[v, w]
            if u == v:
                if not s > 0.0:  # also a NaN
                    return False
                low[u, u] = math.sqrt(s)
            else:
                low[u, v] = s / low[v, v]
    return True


@kernel("Tuple((float64[:, :, ::1], boolean[::1], boolean))(float64[:, :, :], float64)")
def symmetrised_checked(p, floor):
    """(P + P^T) / 2 of every P (N, n, n), n >= 4, as component-major (n, n, N); which tracks hold
    a non-finite entry after that; and whether every track's P minus ``floor`` I is positive
    definite. The leading 4x4 block is tested by fraction-free elimination (a Cholesky test: each
    stage X' = x00 X[1:, 1:] - x0 x0^T; a NaN pivot fails), which never divides, so a zero pivot
    cannot warn; magnitudes grow as eighth powers, far inside float64 for covariances (an overflow
    only sends the caller to its exact eigenvalue path). Beyond n = 4 the whole matrix must also
    pass ``_cholesky_ok``. False decides nothing: the caller then takes its eigenvalue path."""
    n_trk, n = p.shape[0], p.shape[1]
    sym = np.empty((n, n, n_trk))
    broken = np.zeros(n_trk, np.bool_)
    pivots_ok = True
    a = np.empty((4, 4))
    b = np.empty((3, 3))
    c = np.empty((2, 2))
    low = np.empty((n, n))  # _cholesky_ok's scratch, for n > 4
    for i in range(n_trk):
        finite = True
        for u in range(n):
            for v in range(n):
                s = p[i, u, v] + p[i, v, u]
                s *= 0.5
                sym[u, v, i] = s
                finite &= math.isfinite(s)
        broken[i] = not finite
        if not pivots_ok:
            continue
        for u in range(4):
            for v in range(4):
                a[u, v] = sym[u, v, i] - (floor if u == v else 0.0)
        for u in range(3):
            for v in range(3):
                b[u, v] = a[0, 0] * a[u + 1, v + 1] - a[0, u + 1] * a[0, v + 1]
        for u in range(2):
            for v in range(2):
                c[u, v] = b[0, 0] * b[u + 1, v + 1] - b[0, u + 1] * b[0, v + 1]
        d33 = c[0, 0] * c[1, 1] - c[0, 1] * c[0, 1]
        pivots_ok = a[0, 0] > 0.0 and b[0, 0] > 0.0 and c[0, 0] > 0.0 and d33 > 0.0
        if pivots_ok and n > 4:
            # Larger states (the IMM's 5, the ego EKF's 6): the whole matrix must pass too. A
            # plain Cholesky of P - floor I (its pivots are divided out, so magnitudes do not
            # grow with n); it runs only where the leading 4x4 passed, so the 4x4 decisions
            # above stay exactly what they were.
            pivots_ok = _cholesky_ok(sym, i, n, floor, low)
    return sym, broken, pivots_ok
