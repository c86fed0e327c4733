"""planning/lattice_bounds.py against the numpy code it replaced in lattice_plan_step, kept here as
the reference: the kernels perform the same operations in the same order, so every output must be
equal to the bit (core/jit.py), on random families with NaN, infeasible and emergency profiles,
with and without a previous plan, for both benchmark grids."""
from __future__ import annotations

import math

import numpy as np
import pytest

from planning.lattice import LatticeConfig
from planning.lattice_bounds import candidate_bounds, longitudinal_family_terms, sum_sq, sum_sq_pair
from planning.lattice_grid import Family, lateral_family_tabled
from planning.lattice_tables import build_tables


# --- reference: the numpy form (lattice_grid and lattice_plan_step before the kernels) ---
def longitudinal_family_tabled(lon_map: np.ndarray, end_speed_blocks: np.ndarray, horizons_s: np.ndarray,
                               s0: float, v0: float, a0: float, accel_levels_mps2: np.ndarray, v_max_mps: float,
                               extra_rows: np.ndarray | None = None) -> tuple[Family, np.ndarray]:
    """As planning/lattice_grid.longitudinal_family, from the precomputed linear maps of
    LatticeTables (was planning/lattice_grid.longitudinal_family_tabled): (s0, v0, a0) are shared by
    every profile, so their part is one (4, n_T, K) block added to all levels; the end speed varies
    per level and horizon, and its term is one product end speeds (n_v, n_T) @ ``end_speed_blocks``
    (4, n_T, n_T * K) written straight into the family's buffer. Each entry of that product has a
    single non-zero term, so it equals the elementwise end speed x map. ``extra_rows``: x, v, a, j
    (4, E, K) of E more profiles, the same for every horizon, appended as rows n_v .. n_v + E - 1."""
    _, _, n_T, K = lon_map.shape
    n_v = accel_levels_mps2.shape[0]
    v_tgt = np.minimum(np.maximum(v0 + accel_levels_mps2[:, None] * horizons_s[None, :], 0.0), v_max_mps)
    n_e = 0 if extra_rows is None else extra_rows.shape[1]
    flat = np.empty((4, n_v + n_e, n_T * K))
    np.matmul(v_tgt, end_speed_blocks, out=flat[:, :n_v])
    out = flat.reshape(4, n_v + n_e, n_T, K)
    out[:, :n_v] += (lon_map[0] * s0 + lon_map[1] * v0 + lon_map[2] * a0)[:, None]
    if n_e:
        out[:, n_v:] = extra_rows[:, :, None, :]
    return Family(out), v_tgt


def _integral_sq(z: np.ndarray, dt_s: float) -> np.ndarray:
    return np.einsum("...k,...k->...", z, z) * dt_s


def _lateral_feasible(lat: Family, max_lat_accel_mps2: float, road_half_width_m: float,
                      ego_half_width_m: float) -> np.ndarray:
    x_and_a = lat.xvaj[::2]
    x_abs, a_abs = np.maximum(np.maximum.reduce(x_and_a, axis=-1), -np.minimum.reduce(x_and_a, axis=-1))
    return (x_abs + ego_half_width_m <= road_half_width_m + 1e-9) & (a_abs <= max_lat_accel_mps2)


def _longitudinal_feasible(lon: Family, max_accel_mps2, max_decel_mps2, max_jerk_mps3, v_max_mps,
                           comfort_decel_mps2, comfort_jerk_mps3):
    vaj_by_time = np.ascontiguousarray(np.moveaxis(lon.xvaj[1:], -1, 0))
    lo, hi = np.minimum.reduce(vaj_by_time, axis=0), np.maximum.reduce(vaj_by_time, axis=0)
    a_min = lo[1]
    j_abs = np.maximum(hi[2], -lo[2])
    ok = (hi[1] <= max_accel_mps2 + 1e-9) & (a_min >= -max_decel_mps2 - 1e-9) & (j_abs <= max_jerk_mps3 + 1e-9)
    ok &= (lo[0] >= -0.05) & (hi[0] <= v_max_mps + 0.05)
    return ok, (a_min < -comfort_decel_mps2 - 0.1) | (j_abs > comfort_jerk_mps3 + 1e-6)


def _reference_rows(s0, ref_s, ref_v, ref_a, dt_s):
    rows = np.empty((4,) + ref_a.shape)
    np.add(ref_s, s0, out=rows[0])
    rows[1], rows[2] = ref_v, ref_a
    np.subtract(ref_a[:, 1:], ref_a[:, :-1], out=rows[3, :, :-1])
    rows[3, :, :-1] /= dt_s
    rows[3, :, -1] = rows[3, :, -2]
    return rows


def _ref_bounds(tab, cfg, lat, d_targets, s0, v0, a0, v_max, lane_caps, ref_s, ref_v, ref_a, lanes, valid,
                committed, previous):
    """Lines 'd_targets' .. 'order' of lattice_plan_step before the kernels."""
    dt, steps, offsets, lane_slot = tab.dt_s, tab.steps, tab.offsets_m, tab.lane_slot
    lon, _ = longitudinal_family_tabled(tab.lon_map, tab.lon_end_speed_blocks, tab.horizons_s, s0, v0, a0,
                                        tab.levels_mps2, v_max, _reference_rows(s0, ref_s, ref_v, ref_a, dt))
    n_q = tab.levels_mps2.shape[0]
    lat_ok = _lateral_feasible(lat, cfg.max_lat_accel_mps2, 5.25, 0.5 * cfg.ego_width_m)
    lat_ok &= valid[lane_slot][:, None]
    lon_ok, lon_emergency = _longitudinal_feasible(lon, cfg.max_accel_mps2, cfg.max_decel_mps2, cfg.max_jerk_mps3,
                                                   v_max, cfg.acc.comfort_decel_mps2, cfg.comfort_jerk_mps3)
    c_lat = cfg.w_lat_jerk * _integral_sq(lat.j, dt) + cfg.w_lat_dev * _integral_sq(lat.x - d_targets[:, None, None], dt)
    c_lat += np.array([cfg.w_offset * (o * o) + cfg.lane_change_cost * float(ln != committed)
                       for ln in lanes.tolist() for o in offsets.tolist()])[:, None]
    lane_progress = cfg.w_progress * _integral_sq(np.maximum(lane_caps[:, None] - ref_v, 0.0), dt)
    c_lat += lane_progress[lane_slot][:, None]
    if previous is not None:
        previous_d, inside = previous
        deviation = lat.x - previous_d
        if not inside.all():
            deviation *= inside
        c_lat += cfg.w_consistency * _integral_sq(deviation, dt)
    c_lon = cfg.w_lon_jerk * _integral_sq(lon.j, dt) + cfg.emergency_cost * lon_emergency
    v_flat = lon.v.reshape(-1, steps)
    vv = np.einsum("mk,mk->m", v_flat, v_flat)
    vr = v_flat @ ref_v.T
    rr = np.einsum("jk,jk->j", ref_v, ref_v)
    c_speed = (cfg.w_speed * dt) * np.maximum(vv[:, None] - 2.0 * vr + rr[None, :], 0.0).T.reshape((3,) + lon.v.shape[:2])
    bound = c_lat[:, None, :] + c_lon[None, :, :] + (c_speed if offsets.shape[0] == 1 else c_speed[lane_slot])
    # Per target lane slot: no faster than max(its cap, v0) (lattice_plan_step's lon_ok_slot).
    slot_v_hi = np.maximum(lane_caps, v0) + 0.05
    lon_ok_slot = lon_ok[None] & (np.maximum.reduce(lon.v, axis=-1)[None] <= slot_v_hi[:, None, None])
    ok = lat_ok[:, None, :] & lon_ok_slot[lane_slot]
    ok[:, n_q:, :] &= tab.rollout_in_lane
    bound = np.where(ok, bound, np.inf)
    flat = bound.ravel()
    n_ok = int(np.count_nonzero(np.isfinite(flat)))
    order = np.argsort(flat, kind="stable")[:n_ok]
    return lon, lon_ok, lon_ok_slot, lon_emergency, c_lon, vv, flat, order


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to the bit (signed zeros included), NaN where the other is NaN."""
    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    nan = np.isnan(a)
    return (a.shape == b.shape and np.array_equal(nan, np.isnan(b))
            and np.array_equal(a[~nan].view(np.int64), b[~nan].view(np.int64)))


def test_sum_sq_is_numpy_einsum_to_the_bit():
    rng = np.random.default_rng(0)
    for n in list(range(0, 71)) + [255]:
        for _ in range(20):
            y = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6)
            z = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6)
            ref_y, ref_z = np.einsum("k,k->", y, y), np.einsum("k,k->", z, z)
            assert sum_sq(y) == ref_y and sum_sq_pair(y, z) == (ref_y, ref_z)


CONFIGS = [LatticeConfig(budget_ns=10**12),
           LatticeConfig(num_accel_levels=27, horizons_s=tuple(np.linspace(1.0, 5.0, 9)),
                         lateral_offsets_m=(-0.5, 0.0, 0.5), budget_ns=10**12)]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("seed", range(12))
def test_bound_kernels_equal_numpy_reference(cfg, seed):
    rng = np.random.default_rng(seed)
    tab = build_tables(cfg)
    steps, dt = tab.steps, tab.dt_s
    s0, v0 = float(rng.uniform(0.0, 500.0)), float(rng.uniform(0.0, 35.0))
    a0 = float(rng.uniform(-6.0, 3.0))
    v_cap = float(rng.choice([30.0, 15.0, math.inf]))
    # A curve's lanes (seeds 6..11): the cap in reference-line rates differs per lane slot.
    stretch = 1.0 - rng.uniform(-0.02, 0.02) * np.array([-3.5, 0.0, 3.5]) if seed >= 6 else np.ones(3)
    lane_caps = v_cap / stretch
    # Lane roll-outs: plausible speeds, a rough acceleration (some beyond the jerk and comfort limits).
    ref_v = np.clip(v0 + np.cumsum(rng.normal(0.0, 0.3, (3, steps)), axis=1), 0.0, None)
    ref_a = rng.normal(0.0, 1.5, (3, steps))
    ref_s = np.cumsum(ref_v, axis=1) * dt
    if seed % 4 == 1:  # NaN in one lane's roll-out
        ref_v[0, 7], ref_a[2, 3] = np.nan, np.nan
    lane = int(rng.integers(0, 3))
    lanes = np.array([lane - 1, lane, lane + 1], dtype=np.int64)
    valid = np.array([0 <= ln < 3 and bool(rng.random() < 0.8) for ln in lanes.tolist()])
    valid[1] = True
    v_max = max(float(lane_caps[valid].max()), v0)
    committed = int(rng.choice([lane, lane - 1, lane + 1]))
    centres = (lanes - 1.0) * 3.5
    d_targets = (centres[:, None] + tab.offsets_m[None, :]).ravel()
    d0 = float(rng.uniform(-4.0, 4.0))
    lat = lateral_family_tabled(tab.lat_map, d0, float(rng.normal(0.0, 1.0)), float(rng.normal(0.0, 1.0)), d_targets)
    if seed % 4 == 2:
        lat.xvaj[0, 1, 0, 5] = np.nan
    previous = None
    if seed % 3:
        previous_d = d0 + np.cumsum(rng.normal(0.0, 0.05, steps))
        inside = np.arange(steps) < (steps if seed % 2 else int(rng.integers(1, steps)))
        previous = (previous_d, inside)
    if seed == 5:
        a0 = math.nan  # every quartic NaN: nothing feasible but the roll-outs

    lon_r, ok_r, ok_slot_r, emerg_r, c_lon_r, vv_r, flat_r, order_r = _ref_bounds(
        tab, cfg, lat, d_targets, s0, v0, a0, v_max, lane_caps, ref_s, ref_v, ref_a, lanes, valid, committed,
        previous)

    xva, ok, emerg, c_lon, vv = longitudinal_family_terms(
        tab.lon_map, tab.levels_mps2, tab.horizons_s, s0, v0, a0, v_max, ref_s, ref_v, ref_a, dt,
        cfg.max_accel_mps2, cfg.max_decel_mps2, cfg.max_jerk_mps3, cfg.acc.comfort_decel_mps2, cfg.comfort_jerk_mps3,
        cfg.w_lon_jerk, cfg.emergency_cost)
    for q in range(3):
        assert _same(xva[q], lon_r.xvaj[q])
    assert np.array_equal(ok, ok_r) and np.array_equal(emerg, emerg_r)
    assert _same(c_lon, c_lon_r) and _same(vv, vv_r)

    previous_d, weight = (np.zeros(0), np.zeros(0)) if previous is None else (previous[0], previous[1].astype(float))
    v_ref_dot = xva[1].reshape(-1, steps) @ ref_v.T
    flat, order = candidate_bounds(
        lat.xvaj, d_targets, tab.lane_slot, tab.offsets_m, lanes, committed, valid, ref_v, previous_d, weight,
        previous is not None, ok_slot_r, c_lon, vv, v_ref_dot, dt, lane_caps, cfg.max_lat_accel_mps2, 5.25,
        0.5 * cfg.ego_width_m, cfg.w_lat_jerk, cfg.w_lat_dev, cfg.w_offset, cfg.lane_change_cost, cfg.w_progress,
        cfg.w_consistency, cfg.w_speed)
    assert _same(flat, flat_r)
    assert np.array_equal(order, order_r)
    if seed == 0:
        assert 0 < order.shape[0] < flat.shape[0]  # feasible and infeasible candidates both exercised
