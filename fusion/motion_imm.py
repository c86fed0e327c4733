"""Interacting multiple model (IMM) motion for the tracker: constant velocity + coordinated turn.

Both models live on the augmented state (x, y, vx, vy, omega) in the map frame, stacked per track
as ``xm`` (N, M, 5), ``pm`` (N, M, 5, 5) with model probabilities ``mu`` (N, M), M = 2:

* model 0, CV: today's constant-velocity model (white acceleration, ``accel_psd_m2ps3``) on
  (x, y, vx, vy); omega is carried unchanged and plays no part in the motion. Carrying it (rather
  than pinning it to 0) is the "unbiased mixing" of Granstroem, Willett and Bar-Shalom (2015) for
  models of unequal dimension: mixing into the turn model takes the turn model's own turn rate for
  the CV share instead of pulling it towards 0 at every step, which would keep the turn model from
  building up a turn rate until it already dominates.
* model 1, CT: the nearly-coordinated turn with Cartesian velocity (Bar-Shalom, Li, Kirubarajan
  2001, 11.7): the velocity vector turns at omega, omega is a random walk
  (``ct_turn_psd_rad2ps3``), plus white acceleration (``ct_accel_psd_m2ps3``) for speed changes.
  A car changing lanes is a turn of its velocity (lateral acceleration = speed x omega), which
  this model follows without the large acceleration noise a lone CV model would need.

One IMM cycle (Blom and Bar-Shalom 1988), batched over tracks: mixing with a Markov transition
matrix whose stay probability scales with the time step (``imm_p_stay`` per 100 ms, so frames of
three sources 20 ms apart switch no more often than one source at 10 Hz), per-model prediction
(the exact CT transition with its Jacobian, the omega -> 0 limit by series), per-model update (the
caller's sensor model, every (track, model) row in one batch), model likelihoods from each
innovation, probability update in log space with a floor, and moment matching to the 4-D
(x, y, vx, vy) estimate that association, track management and the output use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fusion import kalman

N_MODELS = 2
N_STATE = 5
CV, CT = 0, 1
LOG_2PI = math.log(2.0 * math.pi)
# Below this |omega * dt| the CT coefficients are evaluated by their Taylor series: the exact forms
# divide by omega and cancel (their derivatives by omega lose ~eps / u^2 relative), while the series
# to u^5 is exact to float64 there (the next term is below u^6 / 5040 < 2e-16).
_SMALL_TURN = 1e-2
# Time over which ``imm_p_stay`` is the stay probability.
P_STAY_PERIOD_S = 0.1


@dataclass(frozen=True, slots=True)
class ImmPrediction:
    """Per-model predicted states and predicted model probabilities, and their 4-D combination."""

    xm: np.ndarray  # (N, M, 5)
    pm: np.ndarray  # (N, M, 5, 5)
    mu: np.ndarray  # (N, M) predicted model probabilities (the c_j of the IMM)
    x: np.ndarray  # (N, 4) combined
    p: np.ndarray  # (N, 4, 4) combined


def ct_coefficients(omega: np.ndarray, dt_s: float) -> tuple[np.ndarray, ...]:
    """sin(wT)/w, (1 - cos(wT))/w, cos(wT), sin(wT) and the derivatives of the first two by w.

    All (N,); finite for every finite omega including 0 (series for |wT| < 1e-2)."""
    u = omega * dt_s
    small = np.abs(u) < _SMALL_TURN
    c, s = np.cos(u), np.sin(u)
    w_safe = np.where(small, 1.0, omega)
    u2 = u * u
    a = np.where(small, dt_s * (1.0 - u2 / 6.0 * (1.0 - u2 / 20.0)), s / w_safe)
    b = np.where(small, dt_s * u * (0.5 - u2 / 24.0 * (1.0 - u2 / 30.0)), (1.0 - c) / w_safe)
    # d/dw sin(wT)/w = (T cos(wT) - sin(wT)/w) / w ; d/dw (1 - cos(wT))/w = (T sin(wT) - (1-cos)/w) / w
    dt2 = dt_s * dt_s
    da = np.where(small, dt2 * u * (-1.0 / 3.0 + u2 / 30.0 * (1.0 - u2 / 28.0)), (dt_s * c - a) / w_safe)
    db = np.where(small, dt2 * (0.5 - u2 / 8.0 * (1.0 - u2 / 18.0)), (dt_s * s - b) / w_safe)
    return a, b, c, s, da, db


def ct_transition(x: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinated-turn prediction of states x (N, 5): (f(x) (N, 5), Jacobian F (N, 5, 5))."""
    px, py, vx, vy, w = x.T
    a, b, c, s, da, db = ct_coefficients(w, dt_s)
    x_new = np.empty_like(x)
    x_new[:, 0] = px + a * vx - b * vy
    x_new[:, 1] = py + b * vx + a * vy
    x_new[:, 2] = c * vx - s * vy
    x_new[:, 3] = s * vx + c * vy
    x_new[:, 4] = w
    f = np.zeros(x.shape[:1] + (5, 5))
    f[:, 0, 0] = f[:, 1, 1] = f[:, 4, 4] = 1.0
    f[:, 0, 2], f[:, 0, 3], f[:, 1, 2], f[:, 1, 3] = a, -b, b, a
    f[:, 2, 2], f[:, 2, 3], f[:, 3, 2], f[:, 3, 3] = c, -s, s, c
    f[:, 0, 4] = da * vx - db * vy
    f[:, 1, 4] = db * vx + da * vy
    f[:, 2, 4] = -dt_s * (s * vx + c * vy)
    f[:, 3, 4] = dt_s * (c * vx - s * vy)
    return x_new, f


def transition_matrix(dt_s: float, p_stay: float) -> np.ndarray:
    """(M, M) Markov matrix, row i = from model i, for a step of ``dt_s``: each model stays with
    ``p_stay ** (dt / 100 ms)`` (a continuous-time chain), so 0 s is the identity."""
    stay = p_stay ** (dt_s / P_STAY_PERIOD_S)
    return np.array([[stay, 1.0 - stay], [1.0 - stay, stay]])


def mix(xm: np.ndarray, pm: np.ndarray, mu: np.ndarray,
        pi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IMM mixing: (x0 (N, M, n), P0 (N, M, n, n), predicted probabilities c (N, M))."""
    joint = mu[:, :, None] * pi[None]  # (N, i, j) = mu_i pi_ij
    c = joint.sum(axis=1)  # (N, j)
    # mu_{i|j}, as (N, j, i); c > 0: mu is floored and pi has no zero column
    wt = np.swapaxes(joint / c[:, None, :], 1, 2)
    n, m, k = xm.shape
    x0 = wt @ xm
    p0 = (wt @ pm.reshape(n, m, k * k)).reshape(n, m, k, k)
    d = xm[:, None, :, :] - x0[:, :, None, :]  # (N, j, i, n): spread of model i about mix j
    p0 += np.swapaxes(d, -1, -2) @ (d * wt[..., None])
    return x0, p0, c


def predict_models(x0: np.ndarray, p0: np.ndarray, dt_s: float, accel_psd_cv: float,
                   accel_psd_ct: float, turn_psd: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-model prediction of mixed states x0 (N, M, 5), P0 (N, M, 5, 5) over ``dt_s``."""
    n = x0.shape[0]
    f = np.empty((n, N_MODELS, 5, 5))
    x_new = np.empty_like(x0)
    f[:, CV] = np.eye(5)
    f[:, CV, 0, 2] = f[:, CV, 1, 3] = dt_s
    x_new[:, CV] = x0[:, CV]
    x_new[:, CV, :2] += dt_s * x0[:, CV, 2:4]
    x_new[:, CT], f[:, CT] = ct_transition(x0[:, CT], dt_s)
    q = np.zeros((N_MODELS, 5, 5))
    q_pv = kalman.cv_process_noise(float(dt_s), 1.0)
    q[CV, :4, :4] = q_pv * accel_psd_cv
    q[CT, :4, :4] = q_pv * accel_psd_ct
    q[CT, 4, 4] = turn_psd * dt_s
    p_new = f @ p0 @ np.swapaxes(f, -1, -2) + q
    return x_new, p_new


def combine(xm: np.ndarray, pm: np.ndarray, mu: np.ndarray, dim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Moment-matched mixture of the models' first ``dim`` components: (x (N, dim), P (N, dim, dim))."""
    xs, ps = xm[:, :, :dim], pm[:, :, :dim, :dim]
    x = np.einsum("nj,njk->nk", mu, xs)
    d = xs - x[:, None, :]
    p = np.einsum("nj,njkl->nkl", mu, ps + d[:, :, :, None] * d[:, :, None, :])
    return x, p


def update_probabilities(c: np.ndarray, loglik: np.ndarray, floor: float) -> np.ndarray:
    """Posterior model probabilities from predicted ``c`` (K, M) and log-likelihoods (K, M).

    In log space, so likelihoods that underflow (a model far off, d^2 in the thousands) still
    compare; a non-finite log-likelihood counts as -inf, and a row where every model's is
    non-finite keeps its prediction. Every probability is then lifted to ``floor`` and the row
    renormalised: a model never dies out and can take over within a few updates."""
    ll = np.where(np.isfinite(loglik), loglik, -np.inf)
    with np.errstate(divide="ignore"):
        logw = np.log(c) + ll
    top = logw.max(axis=1, keepdims=True)
    dead = ~np.isfinite(top[:, 0])
    w = np.exp(logw - np.where(dead[:, None], 0.0, top))
    w = np.where(dead[:, None], c, w)
    w /= w.sum(axis=1, keepdims=True)
    w = np.maximum(w, floor)
    return w / w.sum(axis=1, keepdims=True)


def initial_models(x0: np.ndarray, p0: np.ndarray, turn_sigma_rps: float,
                   turn_prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Models for tracks with 4-D estimates x0 (K, 4), p0 (K, 4, 4): both start from the same
    estimate with omega = 0 +- ``turn_sigma_rps``; the turn model has probability ``turn_prob``."""
    k = x0.shape[0]
    xm = np.zeros((k, N_MODELS, 5))
    xm[:, :, :4] = x0[:, None, :]
    pm = np.zeros((k, N_MODELS, 5, 5))
    pm[:, :, :4, :4] = p0[:, None]
    pm[:, :, 4, 4] = turn_sigma_rps**2
    mu = np.empty((k, N_MODELS))
    mu[:, CV], mu[:, CT] = 1.0 - turn_prob, turn_prob
    return xm, pm, mu


def ensure_models(x: np.ndarray, p: np.ndarray, xm: np.ndarray, pm: np.ndarray, mu: np.ndarray,
                  cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The state's models, or fresh ones from the 4-D estimate where it holds none (a state that
    the CV tracker built, then handed to an IMM configuration)."""
    if mu.ndim == 2 and mu.shape[1] == N_MODELS:
        return xm, pm, mu
    return initial_models(x, p, cfg.imm_init_turn_sigma_rps, cfg.imm_init_turn_prob)


def predict(xm: np.ndarray, pm: np.ndarray, mu: np.ndarray, dt_s: float, cfg) -> ImmPrediction:
    """Mixing and per-model prediction over ``dt_s`` > 0, then the combined 4-D estimate."""
    x0, p0, c = mix(xm, pm, mu, transition_matrix(dt_s, cfg.imm_p_stay))
    xp, pp = predict_models(x0, p0, dt_s, cfg.accel_psd_m2ps3, cfg.ct_accel_psd_m2ps3,
                            cfg.ct_turn_psd_rad2ps3)
    x, p = combine(xp, pp, c)
    return ImmPrediction(xp, pp, c, x, p)


# update_rows(x (R, 5), p (R, 5, 5), track_idx (R,), det_idx (R,)) -> (x, p, loglik (R,)): the
# sensor's update of every given row, each row one (track, model) pair.
RowUpdate = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                     tuple[np.ndarray, np.ndarray, np.ndarray]]


def update(pred: ImmPrediction, track_idx: np.ndarray, det_idx: np.ndarray, update_rows: RowUpdate,
           min_prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Update every model of the matched tracks in one batch; tracks without a detection keep
    their prediction. Returns (xm, pm, mu, x, p), x and p the new combined 4-D estimate."""
    xm, pm, mu = pred.xm, pred.pm, pred.mu
    k = track_idx.shape[0]
    if k == 0:
        return xm, pm, mu, pred.x, pred.p
    rows_x = xm[track_idx].reshape(k * N_MODELS, N_STATE)
    rows_p = pm[track_idx].reshape(k * N_MODELS, N_STATE, N_STATE)
    rx, rp, ll = update_rows(rows_x, rows_p, np.repeat(track_idx, N_MODELS),
                             np.repeat(det_idx, N_MODELS))
    xm, pm, mu = xm.copy(), pm.copy(), mu.copy()
    xm[track_idx] = rx.reshape(k, N_MODELS, N_STATE)
    pm[track_idx] = rp.reshape(k, N_MODELS, N_STATE, N_STATE)
    mu[track_idx] = update_probabilities(mu[track_idx], ll.reshape(k, N_MODELS), min_prob)
    x, p = combine(xm, pm, mu)
    return xm, pm, mu, x, p


def gaussian_loglik(maha: np.ndarray, logdet: np.ndarray, m: int) -> np.ndarray:
    """log N(y; 0, S) from y^T S^-1 y and ln det S, for m-dimensional innovations."""
    return -0.5 * (maha + logdet + m * LOG_2PI)


def repair(pm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``kalman.repair_covariance`` per model: (pm, repaired (N,), broken (N,)), a track marked
    where any of its models was."""
    n = pm.shape[0]
    flat, rep, brk = kalman.repair_covariance(pm.reshape(n * N_MODELS, N_STATE, N_STATE))
    return (flat.reshape(pm.shape), rep.reshape(n, N_MODELS).any(axis=1),
            brk.reshape(n, N_MODELS).any(axis=1))
