"""Leaner per-plan paths of the lattice planner against the forms they replaced (kept here as the
reference): equal to the bit."""
from __future__ import annotations

import numpy as np

from core.geometry import wrap_angle
from planning.acc_planner import AccPlannerConfig
from planning.lattice import LatticeState, _track_rates
from planning.track_frenet import FrenetTracks


def _ref_estimate_yaw_rate(ids: np.ndarray, yaws: np.ndarray, prev_ids: np.ndarray, prev_yaws: np.ndarray,
                           dt_s: float) -> np.ndarray:
    """The lattice's yaw-rate memory before it shared the id lookup with the acceleration
    (planning/prediction.estimate_yaw_rate)."""
    rate = np.zeros(ids.shape[0])
    if prev_ids.shape[0] == 0 or dt_s <= 0.0 or ids.shape[0] == 0:
        return rate
    order = np.argsort(prev_ids, kind="stable")
    sorted_ids = prev_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.shape[0] - 1)
    found = sorted_ids[pos] == ids
    rate[found] = wrap_angle(yaws[found] - prev_yaws[order[pos[found]]]) / dt_s
    return rate


def _ref_accel_estimate(ids, vs, state: LatticeState, dt_s: float, smoothing: float) -> np.ndarray:
    """The lattice's acceleration memory before it shared the id lookup with the yaw rate."""
    out = np.zeros(ids.shape[0])
    if state.track_ids.shape[0] == 0 or dt_s <= 0.0 or ids.shape[0] == 0:
        return out
    order = np.argsort(state.track_ids, kind="stable")
    pos = np.minimum(np.searchsorted(state.track_ids[order], ids), order.shape[0] - 1)
    found = state.track_ids[order[pos]] == ids
    j = order[pos[found]]
    raw = (vs[found] - state.track_vs[j]) / dt_s
    out[found] = state.track_accel[j] + smoothing * (raw - state.track_accel[j])
    return np.minimum(np.maximum(out, -12.0), 6.0)


def test_gains_array_is_the_gains_dataclass_array():
    acc = AccPlannerConfig()
    for gap in (acc.time_gap_s, 2.5, 0.7):
        assert np.array_equal(acc.gains_array(gap), acc.gains(gap).as_array())


def test_track_rates_equal_yaw_rate_and_accel_references():
    rng = np.random.default_rng(1)
    for case in range(200):
        n, m = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        ids = rng.choice(12, n, replace=bool(case % 5 == 0)).astype(np.int64)
        prev = rng.choice(12, m, replace=bool(case % 7 == 0)).astype(np.int64)
        z = np.zeros(n)
        vs = rng.normal(20.0, 5.0, n)
        ft = FrenetTracks(ids, z, z, vs, z, vs, z, z, z, z, z, z, rng.uniform(-4.0, 4.0, n))  # straight road: s rate = vs
        state = LatticeState(track_ids=prev, track_yaws=rng.uniform(-4.0, 4.0, m), track_vs=rng.normal(20.0, 5.0, m),
                             track_accel=rng.normal(0.0, 3.0, m))
        if case % 11 == 0 and n:
            ft.vs_mps[0] = np.nan  # the same array as s_rate_mps
        dt = float(rng.choice([0.1, 0.0, -0.1, 0.05]))
        yaw, accel = _track_rates(ft, state, dt, 0.2)
        yaw_ref = _ref_estimate_yaw_rate(ids, ft.yaw_rad, prev, state.track_yaws, dt)
        accel_ref = _ref_accel_estimate(ids, ft.vs_mps, state, dt, 0.2)
        assert np.array_equal(yaw.view(np.int64), yaw_ref.view(np.int64))
        assert np.array_equal(accel.view(np.int64), accel_ref.view(np.int64))  # bits: -0.0 != 0.0, NaN == its own bits
