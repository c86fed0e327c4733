"""Quintic and quartic boundary-value polynomials in time, vectorised over many end conditions.

Coefficients are (M, 6) for x(t) = sum c_i t^i (a quartic has c_5 = 0). Beyond its horizon T a
profile is extended at its end state: constant position for a quintic that ends at rest laterally,
constant velocity for a quartic that ends at zero acceleration.
"""
from __future__ import annotations

import numpy as np


def quintic_coeffs(x0: float, v0: float, a0: float, x1: np.ndarray, v1: np.ndarray, a1: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    """Minimum-jerk quintic from (x0, v0, a0) at t = 0 to (x1, v1, a1) at t = T, all (M,)."""
    x1, v1, a1, T = np.broadcast_arrays(*(np.asarray(z, dtype=np.float64) for z in (x1, v1, a1, T)))
    dx = x1 - x0
    c = np.zeros(x1.shape + (6,))
    c[:, 0], c[:, 1], c[:, 2] = x0, v0, 0.5 * a0
    c[:, 3] = (20.0 * dx - (8.0 * v1 + 12.0 * v0) * T - (3.0 * a0 - a1) * T**2) / (2.0 * T**3)
    c[:, 4] = (-30.0 * dx + (14.0 * v1 + 16.0 * v0) * T + (3.0 * a0 - 2.0 * a1) * T**2) / (2.0 * T**4)
    c[:, 5] = (12.0 * dx - 6.0 * (v1 + v0) * T + (a1 - a0) * T**2) / (2.0 * T**5)
    return c


def quartic_coeffs(x0: float, v0: float, a0: float, v1: np.ndarray, a1: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    """Quartic from (x0, v0, a0) to velocity v1 and acceleration a1 at T (end position free)."""
    v1, a1, T = np.broadcast_arrays(*(np.asarray(z, dtype=np.float64) for z in (v1, a1, T)))
    dv = v1 - v0 - a0 * T
    c = np.zeros(v1.shape + (6,))
    c[:, 0], c[:, 1], c[:, 2] = x0, v0, 0.5 * a0
    c[:, 3] = dv / T**2 - (a1 - a0) / (3.0 * T)
    c[:, 4] = (a1 - a0) / (4.0 * T**2) - dv / (2.0 * T**3)
    return c


def basis(T: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear maps (..., K, 6) from coefficients to position, velocity, acceleration and jerk at
    times t (K,) for horizons T (...): every profile, extension beyond T included, is linear in the
    coefficients, so a whole family is four matrix products."""
    T = np.asarray(T, dtype=np.float64)[..., None]
    tc = np.minimum(t, T)
    after = np.maximum(t - T, 0.0)
    p = np.stack([tc ** i for i in range(6)], axis=-1)  # (..., K, 6)
    i = np.arange(6, dtype=np.float64)
    p_im1 = np.concatenate([np.zeros(tc.shape + (1,)), p[..., :-1]], axis=-1)
    p_im2 = np.concatenate([np.zeros(tc.shape + (2,)), p[..., :-2]], axis=-1)
    p_im3 = np.concatenate([np.zeros(tc.shape + (3,)), p[..., :-3]], axis=-1)
    bv = i * p_im1
    before = (t < T)[..., None] | (t == T)[..., None]
    bx = p + bv * after[..., None]
    ba = np.where(before, i * (i - 1.0) * p_im2, 0.0)
    bj = np.where(before, i * (i - 1.0) * (i - 2.0) * p_im3, 0.0)
    return bx, bv, ba, bj


def evaluate(c: np.ndarray, T: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Position, velocity, acceleration and jerk (M, K) of coefficient rows c (M, 6) with horizons
    T (M,) at times t (K,), extended beyond T at the end velocity with zero acceleration (the end
    conditions both families use)."""
    return tuple(np.einsum("mi,mki->mk", c, b) for b in basis(T, t))


def evaluate_grid(c: np.ndarray, horizons_s: np.ndarray, t: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As ``evaluate`` for a family laid out (M, n_T, 6) over shared horizons (n_T,): one batched
    matrix product per derivative, results (M, n_T, K)."""
    cT = np.ascontiguousarray(c.transpose(1, 0, 2))  # (n_T, M, 6)
    return tuple(np.matmul(cT, b.transpose(0, 2, 1)).transpose(1, 0, 2) for b in basis(horizons_s, t))
