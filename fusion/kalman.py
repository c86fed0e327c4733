"""Batched linear Kalman algebra over a leading track axis.

Every function takes stacks of states ``x`` (N, n) and covariances ``P`` (N, n, n) and returns new
arrays; nothing is modified in place, so a caller's state stays valid if a later step fails. The
update uses the Joseph form, the same as filterpy's ``KalmanFilter.update``, which keeps P symmetric
positive semi-definite under round-off and lets the tests compare the two to 1e-9.
"""
from __future__ import annotations

import numpy as np

from fusion import kalman_kernels

# Smallest eigenvalue a repaired covariance keeps: far below any physical variance in the stack
# (1e-9 m^2 is a 30 um standard deviation) yet far above float64 round-off on metre-scale values.
MIN_EIGENVALUE = 1e-9


def cv_transition(dt_s: np.ndarray | float) -> np.ndarray:
    """Constant-velocity transition for the state (x, y, vx, vy); (4, 4) or (N, 4, 4) for (N,) dt."""
    dt = np.asarray(dt_s, dtype=np.float64)
    f = np.broadcast_to(np.eye(4), dt.shape + (4, 4)).copy()
    f[..., 0, 2] = dt
    f[..., 1, 3] = dt
    return f


def cv_process_noise(dt_s: np.ndarray | float, accel_psd_m2ps3: float) -> np.ndarray:
    """Discretised continuous white-acceleration noise, ordered (x, y, vx, vy).

    Equal to ``filterpy.common.Q_continuous_white_noise(2, dt, q, block_size=2, order_by_dim=False)``.
    A scalar ``dt_s`` (the tracker's hot path) builds the (4, 4) matrix from Python floats.
    """
    if isinstance(dt_s, float):
        pp, pv, vv = dt_s**3 / 3.0, dt_s**2 / 2.0, dt_s
        return np.array([[pp, 0.0, pv, 0.0], [0.0, pp, 0.0, pv], [pv, 0.0, vv, 0.0],
                         [0.0, pv, 0.0, vv]]) * accel_psd_m2ps3
    dt = np.asarray(dt_s, dtype=np.float64)
    q = np.zeros(dt.shape + (4, 4))
    pp, pv, vv = dt**3 / 3.0, dt**2 / 2.0, dt
    for i in range(2):
        q[..., i, i] = pp
        q[..., i, i + 2] = pv
        q[..., i + 2, i] = pv
        q[..., i + 2, i + 2] = vv
    return q * accel_psd_m2ps3


def predict(x: np.ndarray, p: np.ndarray, f: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x' = F x, P' = F P F^T + Q; F and Q are (n, n) shared or (N, n, n) per track."""
    x_new = (f @ x[..., None])[..., 0]
    p_new = f @ p @ np.swapaxes(f, -1, -2) + q
    return x_new, p_new


def update(x: np.ndarray, p: np.ndarray, z: np.ndarray, h: np.ndarray,
           r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Joseph-form linear update of N tracks with N measurements.

    x (N, n), p (N, n, n), z (N, m), h (m, n) shared, r (N, m, m).
    Returns (x, P, innovation (N, m), innovation covariance S (N, m, m)).
    """
    return update_innovation(x, p, z - x @ h.T, h, r)


def update_innovation(x: np.ndarray, p: np.ndarray, y: np.ndarray, h: np.ndarray,
                      r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Joseph-form update from a given innovation ``y`` (N, m): the EKF form, where ``y`` is
    z - h(x) with any angle wrapped, and ``h`` is the Jacobian, (m, n) shared or (N, m, n)."""
    n = x.shape[-1]
    h_t = np.swapaxes(h, -1, -2)
    ph_t = p @ h_t  # (N, n, m)
    s = h @ ph_t + r  # (N, m, m)
    # K = P H^T S^-1, solved rather than inverted: S is symmetric, so K^T = S^-1 (P H^T)^T.
    k = np.swapaxes(np.linalg.solve(s, np.swapaxes(ph_t, -1, -2)), -1, -2)  # (N, n, m)
    x_new = x + (k @ y[..., None])[..., 0]
    i_kh = np.eye(n) - k @ h
    p_new = i_kh @ p @ np.swapaxes(i_kh, -1, -2) + k @ r @ np.swapaxes(k, -1, -2)
    return x_new, p_new, y, s


def update_leading(x: np.ndarray, p: np.ndarray, z: np.ndarray,
                   r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tracker's hot path: a linear update whose H selects the first m state components.

    With that H, P H^T and H P H^T are slices of P, so no matmul by H is needed. S = L L^T is
    factored with its solves folded in (``kalman_kernels.update_leading_rows``): W = L^-1 H P and
    v = L^-1 y give K y = W^T v and K S K^T = W^T W, so x' = x + W^T v and P' = P - W^T W; the gain
    is optimal, so that equals the Joseph form up to round-off (the caller symmetrises). One
    compiled call per batch (a LAPACK call per 4x4 matrix costs several times the arithmetic, and
    numpy row operations over all tracks took ~30 calls). Returns an N-major view of
    component-major arrays (see ``cv_predict_components``).
    """
    xt, pt = kalman_kernels.update_leading_rows(x, p, z, r)
    return xt.T, pt.transpose(2, 0, 1)


def update_leading_at(x: np.ndarray, p: np.ndarray, track_idx: np.ndarray, z: np.ndarray, r: np.ndarray,
                      velocity_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``update_leading`` of the tracks ``track_idx`` only, measurement k for track
    ``track_idx[k]``, with m = 4 (position and velocity) where ``velocity_valid`` and m = 2
    elsewhere; new N-major arrays, the other tracks copied. One compiled call: the gathers and
    scatters of a partial frame cost more in numpy than the update itself."""
    return kalman_kernels.update_leading_at(x, p, track_idx, z, r, velocity_valid)


def update_leading_loglik(x: np.ndarray, p: np.ndarray, z: np.ndarray,
                          r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``update_leading`` that also returns each update's Gaussian log-likelihood (N,),
    log N(y; 0, S), the IMM's model likelihood. The state may have more components than z
    (the IMM's turn rate); H still selects the first m. ln det S in closed form for m = 2 and 4
    (by the Schur complement, det S = det A det M); a non-positive det gives NaN, never an error."""
    m = z.shape[-1]
    ph_t = p[:, :, :m]
    s = p[:, :m, :m] + r
    with np.errstate(divide="ignore", invalid="ignore"):
        if m == 2:
            a, b, d = s[:, 0, 0], s[:, 0, 1], s[:, 1, 1]
            det = a * d - b * b
            s_inv = np.empty_like(s)
            s_inv[:, 0, 0], s_inv[:, 0, 1], s_inv[:, 1, 0], s_inv[:, 1, 1] = d, -b, -b, a
            s_inv /= det[:, None, None]
            logdet = np.log(det)
        elif m == 4:
            s_inv = _inv_spd4(s)
            det_a = s[:, 0, 0] * s[:, 1, 1] - s[:, 0, 1] * s[:, 0, 1]
            mi = s_inv[:, 2:, 2:]  # M^-1
            logdet = np.log(det_a) - np.log(mi[:, 0, 0] * mi[:, 1, 1] - mi[:, 0, 1] * mi[:, 0, 1])
        else:
            s_inv = np.linalg.inv(s)
            sign, logdet = np.linalg.slogdet(s)
            logdet = np.where(sign > 0, logdet, np.nan)
    k = ph_t @ s_inv
    y = z - x[:, :m]
    maha = np.einsum("ni,nij,nj->n", y, s_inv, y)
    x_new = x + (k @ y[..., None])[..., 0]
    p_new = p - k @ np.swapaxes(ph_t, -1, -2)
    return x_new, p_new, -0.5 * (maha + logdet + m * np.log(2.0 * np.pi))


def _inv_spd4(s: np.ndarray) -> np.ndarray:
    """Inverse of a stack of symmetric positive-definite 4x4 matrices (N, 4, 4) by 2x2 blocks.

    ``np.linalg.inv`` pays a LAPACK call per matrix, which on a hundred 4x4 innovation covariances
    costs several times the arithmetic. With S = [[A, B], [B^T, D]], X = A^-1 B and the Schur
    complement M = D - B^T X (both A and M are SPD when S is, so neither pivot vanishes):
    S^-1 = [[A^-1 + X M^-1 X^T, -X M^-1], [-(X M^-1)^T, M^-1]]. Each term is a closed-form 2x2
    evaluated on (N,) component arrays; only the upper triangle of S is read.
    """
    a00, a01, a11 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 1]
    b00, b01, b10, b11 = s[:, 0, 2], s[:, 0, 3], s[:, 1, 2], s[:, 1, 3]
    inv_det_a = 1.0 / (a00 * a11 - a01 * a01)
    ai00, ai01, ai11 = a11 * inv_det_a, -a01 * inv_det_a, a00 * inv_det_a
    x00, x01 = ai00 * b00 + ai01 * b10, ai00 * b01 + ai01 * b11
    x10, x11 = ai01 * b00 + ai11 * b10, ai01 * b01 + ai11 * b11
    m00 = s[:, 2, 2] - (b00 * x00 + b10 * x10)
    m01 = s[:, 2, 3] - (b00 * x01 + b10 * x11)
    m11 = s[:, 3, 3] - (b01 * x01 + b11 * x11)
    inv_det_m = 1.0 / (m00 * m11 - m01 * m01)
    mi00, mi01, mi11 = m11 * inv_det_m, -m01 * inv_det_m, m00 * inv_det_m
    y00, y01 = x00 * mi00 + x01 * mi01, x00 * mi01 + x01 * mi11  # Y = X M^-1
    y10, y11 = x10 * mi00 + x11 * mi01, x10 * mi01 + x11 * mi11
    out = np.empty_like(s)
    out[:, 0, 0] = ai00 + y00 * x00 + y01 * x01
    out[:, 0, 1] = out[:, 1, 0] = ai01 + y00 * x10 + y01 * x11
    out[:, 1, 1] = ai11 + y10 * x10 + y11 * x11
    out[:, 0, 2] = out[:, 2, 0] = -y00
    out[:, 0, 3] = out[:, 3, 0] = -y01
    out[:, 1, 2] = out[:, 2, 1] = -y10
    out[:, 1, 3] = out[:, 3, 1] = -y11
    out[:, 2, 2] = mi00
    out[:, 2, 3] = out[:, 3, 2] = mi01
    out[:, 3, 3] = mi11
    return out


def cv_predict(x: np.ndarray, p: np.ndarray, dt_s: float,
               accel_psd_m2ps3: float) -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity prediction, x' = F x and P' = F P F^T + Q, as fresh C-ordered arrays."""
    xt, pt = cv_predict_components(x, p, dt_s, accel_psd_m2ps3)
    return xt.T.copy(), pt.transpose(2, 0, 1).copy()


def cv_predict_components(x: np.ndarray, p: np.ndarray, dt_s: float,
                          accel_psd_m2ps3: float) -> tuple[np.ndarray, np.ndarray]:
    """``cv_predict`` by block algebra, returned component-major: x' as (4, N), P' as (4, 4, N).

    One compiled call (``kalman_kernels.cv_predict_rows``). The tracker keeps its working arrays
    component-major: its N-major views cost nothing to hand out, and numpy code on them reads
    contiguous (N,) component rows.
    """
    return kalman_kernels.cv_predict_rows(x, p, dt_s,
                                          cv_process_noise(float(dt_s), accel_psd_m2ps3))


def cv_predicted_tracks(x: np.ndarray, p: np.ndarray, dt_s: float,
                        accel_psd_m2ps3: float) -> tuple[np.ndarray, np.ndarray]:
    """``cv_predict``'s values for an output message, as fresh C-ordered (N, 4), (N, 4, 4) arrays,
    in one compiled call that also takes the place of the (4, 4) process-noise matrix: its
    entries are ``cv_process_noise``'s (each a float64 product by the spectral density, exactly
    as numpy multiplies the matrix), passed as three scalars."""
    dt_s = float(dt_s)
    return kalman_kernels.cv_predicted_tracks(x, p, dt_s, dt_s**3 / 3.0 * accel_psd_m2ps3,
                                              dt_s**2 / 2.0 * accel_psd_m2ps3, dt_s * accel_psd_m2ps3)


def cv_track_output(x: np.ndarray, p: np.ndarray, dt_s: float, accel_psd_m2ps3: float,
                    class_loglik: np.ndarray, confirmed: np.ndarray, ids: np.ndarray, yaw: np.ndarray,
                    size: np.ndarray, existence: np.ndarray) -> tuple[np.ndarray, ...]:
    """The ``confirmed`` (N,) bool tracks' ``cv_predicted_tracks`` x (K, 4) and P (K, 4, 4), their
    labels, (K,) int16 argmax of ``class_loglik`` (N, L), and copies of their ids (int64), box
    yaws, sizes (K, 3) and existence, in track order, in one compiled call into arrays of the
    caller's: N rows each, cut to the K leading ones (C-contiguous views) where some track is not
    confirmed."""
    dt_s = float(dt_s)
    n = x.shape[0]
    out = (np.empty((n, 4)), np.empty((n, 4, 4)), np.empty(n, np.int16), np.empty(n, np.int64), np.empty(n),
           np.empty((n, size.shape[1])), np.empty(n))
    k = kalman_kernels.cv_track_output(
        x, p, dt_s, dt_s**3 / 3.0 * accel_psd_m2ps3, dt_s**2 / 2.0 * accel_psd_m2ps3, dt_s * accel_psd_m2ps3,
        class_loglik, confirmed, ids, yaw, size, existence, *out)
    return out if k == n else tuple(a[:k] for a in out)


def repair_covariance(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetrise P and lift eigenvalues below MIN_EIGENVALUE.

    Returns (P, repaired (N,) bool, broken (N,) bool). ``broken`` marks non-finite covariances,
    which cannot be repaired: the caller drops those tracks. P comes back as an N-major view of a
    component-major array (see ``cv_predict_components``); any layout of ``p`` is accepted.
    """
    # One compiled pass (``kalman_kernels.symmetrised_checked``): the symmetrised matrices, which
    # tracks hold a non-finite entry, and a Cholesky-style pivot test of P - MIN_EIGENVALUE I
    # that clears the rule, nothing to repair, without the eigendecomposition below.
    if p.shape[-1] < 4:
        raise ValueError(f"repair_covariance: {p.shape[-1]}x{p.shape[-1]} covariances, at least 4x4 expected")
    sym, broken, pivots_ok = kalman_kernels.symmetrised_checked(p, MIN_EIGENVALUE)
    p = sym.transpose(2, 0, 1)
    n = p.shape[0]
    repaired = np.zeros(n, dtype=bool)
    if n == 0 or (pivots_ok and not broken.any()):
        return p, repaired, broken
    eye = np.eye(p.shape[-1])
    safe = np.where(broken[:, None, None], eye, p) if broken.any() else p
    w, v = np.linalg.eigh(safe)
    repaired = (w.min(axis=-1) < MIN_EIGENVALUE) & ~broken
    if repaired.any():
        w_fix = np.maximum(w[repaired], MIN_EIGENVALUE)
        v_fix = v[repaired]
        p = p.copy()
        p[repaired] = np.einsum("nij,nj,nkj->nik", v_fix, w_fix, v_fix)
    return p, repaired, broken
