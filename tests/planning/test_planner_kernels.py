"""The compiled planner kernels against the plain numpy / Python code they replaced, kept here as
the reference: the same operations in the same order, so the results must be equal to the bit
(core/jit.py), NaN and edge cases included."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.road import Road, RoadSegment
from planning.acc_law import AccGains, desired_accel, rollout
from planning.acc_planner import AccPlannerConfig
from planning.lattice_obstacles import ObstacleTerms, obstacle_terms
from planning.prediction import Prediction
from planning.track_frenet import _curved_road_rates, numpy_curved_road_rates


# --- reference: the ACC law in Python floats (the code before it was compiled) ---
def _ref_desired_accel(v: float, v_target: float, gap_m: float, v_lead: float, a_lead: float,
                  stop_decel_mps2: float, g: AccGains) -> tuple[float, bool, bool]:
    """Desired acceleration, whether it is an emergency (needs more than comfortable braking) and
    whether the lead rather than the cruise demand sets it.

    Runs ~60 times per lattice plan (three lane roll-outs): clamps are conditional expressions, not
    min()/max() calls (a builtin call costs more than the comparison). Each keeps min/max's result,
    ties and NaN included: ``min(x, y)`` is ``y if y < x else x``, ``max(x, y)`` is ``y if y > x else x``."""
    a = g.k_speed_1ps * (v_target - v)
    lo = -g.cruise_decel_mps2
    a = lo if lo > a else a
    hi = g.comfort_accel_mps2
    a = hi if hi < a else a
    if stop_decel_mps2 > 0.0 and v > 0.0:
        a = -stop_decel_mps2 if -stop_decel_mps2 < a else a
    if not math.isfinite(gap_m):
        return a, False, False
    closing = v - v_lead
    closing = 0.0 if 0.0 > closing else closing
    safe_gap = gap_m - g.standstill_gap_m - closing * g.reaction_s
    if safe_gap > 0.0:
        b_safe = (closing * closing) / (2.0 * safe_gap)
    else:
        # Inside the standstill spacing but not closing (a close cut-in at equal speed): the
        # follow law opens the gap comfortably; only closing in calls for emergency braking.
        b_safe = 0.0 if closing == 0.0 else math.inf
    brake_threshold = g.lead_brake_threshold_mps2
    if a_lead < -brake_threshold or v_lead < 0.5:
        lead_decel = -a_lead
        lead_decel = brake_threshold if brake_threshold > lead_decel else lead_decel
        stop_gap = safe_gap + v_lead * v_lead / (2.0 * lead_decel)
        if v > 0.0:
            b_stop = v * v / (2.0 * stop_gap) if stop_gap > 0.0 else math.inf
            b_safe = b_stop if b_stop > b_safe else b_safe
    comfort_decel = g.comfort_decel_mps2
    if b_safe > comfort_decel:
        max_decel = g.max_decel_mps2
        return -(max_decel if max_decel < b_safe else b_safe), True, True
    # Linear constant-time-gap law near equilibrium; far from the lead the allowed closing speed
    # follows sqrt(2 b e), the speed from which an approach deceleration b reaches the desired
    # spacing, so closing in from afar neither chatters nor brakes harder than needed.
    k_rel = g.k_rel_speed_1ps
    e_lin = gap_m - (g.standstill_gap_m + g.time_gap_s * v)
    a_follow = k_rel * (v_lead - v) + g.k_gap_1ps2 * e_lin
    if e_lin > 0.0:
        e_lead = gap_m - (g.standstill_gap_m + g.time_gap_s * v_lead)
        v_ref = v_lead + math.sqrt(2.0 * g.approach_decel_mps2 * (0.0 if 0.0 > e_lead else e_lead))
        a_approach = k_rel * (v_ref - v)
        a_follow = a_approach if a_approach < a_follow else a_follow
    if b_safe > 0.5 * comfort_decel:
        a_follow = -b_safe if -b_safe < a_follow else a_follow  # getting critical: brake at least what safety needs
    a_out = a_follow if a_follow < a else a
    return (-comfort_decel if -comfort_decel > a_out else a_out), False, a_follow < a


def _ref_rollout_lists(v0: float, a0: float, v_target: float, gap0_m: float, v_lead0: float, a_lead: float,
                  stop_decel_mps2: float, g: AccGains, dt_s: float, steps: int
                  ) -> tuple[list[float], list[float], list[float], bool, bool]:
    """``rollout`` with the profiles as Python lists, for callers that gather several roll-outs
    into one array. Free road (infinite gap) takes a branch-free loop: the law is then the cruise
    term. Clamps are conditional expressions with min()/max()'s exact results (see desired_accel)."""
    s_out, v_out, a_out = [0.0] * steps, [0.0] * steps, [0.0] * steps
    s, v, a = 0.0, 0.0 if 0.0 > v0 else v0, a0
    emergency0 = following0 = False
    if not math.isfinite(gap0_m):
        hi, lo = g.comfort_accel_mps2, -g.cruise_decel_mps2
        k, da = g.k_speed_1ps, g.comfort_jerk_mps3 * dt_s
        stopping = stop_decel_mps2 > 0.0
        for i in range(steps):
            a_des = k * (v_target - v)
            a_des = lo if lo > a_des else a_des
            a_des = hi if hi < a_des else a_des
            if stopping and v > 0.0 and -stop_decel_mps2 < a_des:
                a_des = -stop_decel_mps2
            step = a_des - a
            step = -da if -da > step else step
            a += da if da < step else step
            if v <= 0.0 and a < 0.0:
                a = 0.0  # a stopped car does not reverse
            s_out[i], v_out[i], a_out[i] = s, v, a
            v_next = v + a * dt_s
            v_next = 0.0 if 0.0 > v_next else v_next
            s += 0.5 * (v + v_next) * dt_s
            v = v_next
        return s_out, v_out, a_out, False, False
    gap, vl, al = gap0_m, v_lead0, a_lead
    da_comfort, da_emergency = g.comfort_jerk_mps3 * dt_s, g.emergency_jerk_mps3 * dt_s
    for i in range(steps):
        a_des, emergency, following = _ref_desired_accel(v, v_target, gap, vl, al, stop_decel_mps2, g)
        if i == 0:
            emergency0, following0 = emergency, following
        da = da_emergency if emergency else da_comfort
        step = a_des - a
        step = -da if -da > step else step
        a += da if da < step else step
        if v <= 0.0 and a < 0.0:
            a = 0.0
        s_out[i], v_out[i], a_out[i] = s, v, a
        v_next = v + a * dt_s
        v_next = 0.0 if 0.0 > v_next else v_next
        ds = 0.5 * (v + v_next) * dt_s
        vl_next = vl + al * dt_s
        vl_next = 0.0 if 0.0 > vl_next else vl_next
        gap += 0.5 * (vl + vl_next) * dt_s - ds
        if vl_next == 0.0:
            al = 0.0
        s, v, vl = s + ds, v_next, vl_next
    return s_out, v_out, a_out, emergency0, following0


# --- reference: obstacle_terms in numpy (the code before it was compiled) ---
def _ref_obstacle_terms(pred: Prediction, lat_d: np.ndarray, ego_length_m: float, ego_width_m: float,
                   inflation_sigmas: float, lat_margin_m: float, lon_margin_m: float,
                   ignore: np.ndarray, object_brake_mps2: float = 8.0) -> ObstacleTerms:
    """``lat_d`` (n_d, n_T, K) ego lateral offsets; ``ignore`` (N,) objects excluded (followers in the
    ego's own lane); ``object_brake_mps2`` the worst-case braking assumed of an object ahead."""
    if ignore.any():
        keep = np.flatnonzero(~ignore)  # take() by index: cheaper than six boolean-mask copies
        width, length = pred.width_m.take(keep), pred.length_m.take(keep)
        d_obj, s_obj = pred.d_m.take(keep, axis=0), pred.s_m.take(keep, axis=0)
        sig_d, sig_s = pred.sigma_d_m.take(keep, axis=0), pred.sigma_s_m.take(keep, axis=0)
    else:  # the usual case: the prediction's own arrays, no boolean-index copies
        width, length = pred.width_m, pred.length_m
        d_obj, s_obj, sig_d, sig_s = pred.d_m, pred.s_m, pred.sigma_d_m, pred.sigma_s_m
    half_w = 0.5 * (ego_width_m + width)[:, None] + inflation_sigmas * sig_d + lat_margin_m
    half_l = 0.5 * (ego_length_m + length)[:, None] + inflation_sigmas * sig_s + lon_margin_m
    rd = (lat_d[:, :, None, :] - d_obj).astype(np.float32)  # (n_d, n_T, N, K)
    rd *= (1.0 / half_w).astype(np.float32)
    s_ref = float(s_obj[:, 0].min()) if s_obj.shape[0] else 0.0
    rear = s_obj - 0.5 * length[:, None] - s_ref
    v_obj = np.empty_like(s_obj)
    if s_obj.shape[1] > 1:
        # Along-road speed: np.diff's differences, written as slices (np.diff costs a Python call each).
        t_s = pred.t_s
        np.maximum((s_obj[:, 1:] - s_obj[:, :-1]) / (t_s[1:] - t_s[:-1]), 0.0, out=v_obj[:, :-1])
        v_obj[:, -1] = v_obj[:, -2]
    else:
        v_obj.fill(0.0)
    stop = rear + v_obj * v_obj * (0.5 / object_brake_mps2)
    # Overlap |r| < 1 and the proximity bump max(1 - r^2, 0), a cheap compact stand-in for a
    # Gaussian, from one square: |r| < 1 iff r^2 < 1 (for r < 1, r^2 rounds to at most r).
    rd2 = np.multiply(rd, rd, out=rd)
    lat_overlap = rd2 < 1.0
    np.subtract(1.0, rd2, out=rd2)
    return ObstacleTerms(lat_overlap, np.maximum(rd2, 0.0, out=rd2), (s_obj - s_ref).astype(np.float32),
                         (1.0 / half_l).astype(np.float32), stop.astype(np.float32), rear.astype(np.float32), s_ref)


def _random_prediction(rng: np.random.Generator, n: int, k: int, nan: bool) -> Prediction:
    t = np.arange(k) * 0.1
    s = rng.uniform(0.0, 200.0, (n, 1)) + rng.uniform(-5.0, 30.0, (n, 1)) * t
    d = rng.uniform(-6.0, 6.0, (n, 1)) + rng.normal(0.0, 0.3, (n, k))
    sig_s, sig_d = 0.3 + 0.5 * t + 0 * s, 0.3 + 0.05 * t + 0 * d
    if nan and n:
        for arr in (s, d, sig_d):
            arr[rng.integers(n), rng.integers(k)] = np.nan
    return Prediction(t, s, d, sig_s, sig_d, rng.uniform(3.0, 12.0, n), rng.uniform(1.5, 2.6, n),
                      np.zeros(n, np.int8))


@pytest.mark.parametrize("n, k, nan", [(0, 51, False), (1, 1, False), (5, 51, False), (8, 51, True),
                                       (3, 2, True)])
def test_obstacle_terms_kernel_equals_numpy_reference(n, k, nan):
    rng = np.random.default_rng(n * 100 + k)
    for trial in range(20):
        pred = _random_prediction(rng, n, k, nan)
        lat_d = rng.uniform(-5.0, 5.0, (3, 4, k))
        ignore = rng.random(n) < 0.3 if trial % 2 else np.zeros(n, bool)
        args = (pred, lat_d, 4.6, 1.9, 1.0, 0.2, 1.0, ignore, 8.0)
        got, want = obstacle_terms(*args), _ref_obstacle_terms(*args)
        for name in ObstacleTerms.__slots__:
            a, b = getattr(got, name), getattr(want, name)
            if isinstance(b, np.ndarray):
                assert a.dtype == b.dtype and a.shape == b.shape, name
                assert np.array_equal(a, b, equal_nan=True), name
            else:
                assert a == b or (math.isnan(a) and math.isnan(b)), name


def test_acc_rollout_kernel_equals_python_reference():
    rng = np.random.default_rng(7)
    base = AccPlannerConfig()
    cases = emergencies = 0
    for _ in range(3000):
        g = base.gains(float(rng.uniform(0.8, 3.0)))
        v0, a0 = float(rng.uniform(-1.0, 35.0)), float(rng.uniform(-6.0, 2.0))
        gap = float(rng.choice([math.inf, math.nan, rng.uniform(-5.0, 150.0)]))
        v_lead, a_lead = float(rng.choice([0.0, rng.uniform(0.0, 35.0)])), float(rng.choice([0.0, rng.uniform(-8.0, 2.0)]))
        stop = float(rng.choice([0.0, rng.uniform(1.0, 5.0)]))
        v_target, dt, steps = float(rng.uniform(0.0, 35.0)), float(rng.choice([0.1, 0.25])), int(rng.integers(1, 30))
        args = (v0, a0, v_target, gap, v_lead, a_lead, stop, g, dt, steps)
        s, v, a, e0, f0 = rollout(*args)
        rs, rv, ra, re0, rf0 = _ref_rollout_lists(*args)
        assert s.tolist() == rs and v.tolist() == rv and a.tolist() == ra and (e0, f0) == (re0, rf0)
        law = (v0, v_target, gap, v_lead, a_lead, stop, g)
        got_law, want_law = desired_accel(*law), _ref_desired_accel(*law)
        assert got_law == want_law or (math.isnan(got_law[0]) and math.isnan(want_law[0])
                                        and got_law[1:] == want_law[1:])
        cases += 1
        emergencies += e0
    assert emergencies > 100  # the emergency branch was exercised, not only cruise and follow


# --- reference: one batch of the anytime search in numpy (the code before it was compiled) ---
def _ref_batch(obs, jv, jl, lon_x_rows, lon_v_rows, lat_a_rows, road_curv, lat_overlap_rows, rear_axle,
               max_curv, max_lat):
    rs = ((lon_x_rows.take(jv, axis=0) + rear_axle) - obs.s_ref_m).astype(np.float32)[:, None, :] - obs.s_obj_rel
    rs *= obs.inv_half_l
    rs2 = np.multiply(rs, rs, out=rs)
    lon_ov = rs2 < 1.0
    w = np.multiply(rs2, -0.25, out=rs2)
    w += 1.0
    lon_w = np.maximum(w, 0.0, out=w)
    v_b = lon_v_rows.take(jv, axis=0)
    collide = (lat_overlap_rows.take(jl, axis=0) & lon_ov).any(axis=(1, 2))
    curv = lat_a_rows.take(jl, axis=0) / np.maximum(v_b, 2.0) ** 2
    if road_curv.shape[0]:
        curv += road_curv
    abs_curv = np.abs(curv)
    kin_ok = ~(((v_b > 2.0) & ((abs_curv > max_curv) | (v_b * v_b * abs_curv > max_lat))).any(axis=-1))
    return lon_w, ~collide & kin_ok


def _ref_unsafe_following(obs, s_front_m, v_mps, lat_overlap, reaction_s, ego_brake_mps2):
    front_rel = s_front_m - obs.s_ref_m
    ego_stop = (front_rel + v_mps * reaction_s + v_mps * v_mps * (0.5 / ego_brake_mps2)).astype(np.float32)
    shortfall = ego_stop[:, None, :] - obs.stop_rel
    worse = (shortfall > 0.01) & (shortfall[:, :, :1] <= 0.0)
    worse &= front_rel.astype(np.float32)[:, None, :] < obs.rear_rel
    worse &= lat_overlap
    return worse.any(axis=(1, 2))


@pytest.mark.parametrize("curved, nan", [(False, False), (True, False), (False, True)])
def test_batch_kernels_equal_numpy_reference(curved, nan):
    from planning.lattice_batch import batch_terms, best_rss_safe
    rng = np.random.default_rng(11 + 2 * curved + nan)
    k, rows_lon, rows_lat = 51, 40, 15
    seen = np.zeros(4, int)  # feasible, infeasible, RSS-unsafe, RSS-safe candidates
    for trial in range(30):
        n = int(rng.integers(0, 6))
        pred = _random_prediction(rng, n, k, nan)
        lat_d = rng.uniform(-5.0, 5.0, (3, 5, k))
        obs = obstacle_terms(pred, lat_d, 4.6, 1.9, 1.0, 0.2, 1.0, np.zeros(n, bool), 8.0)
        lat_overlap_rows = obs.lat_overlap.reshape((15,) + obs.lat_overlap.shape[2:])
        t = np.arange(k) * 0.1
        lon_x_rows = float(pred.s_m[0, 0]) - 40.0 + rng.uniform(0.0, 30.0, (rows_lon, 1)) * t if n else rng.uniform(0, 100, (rows_lon, k))
        lon_v_rows = rng.uniform(-1.0, 35.0, (rows_lon, k))
        lat_a_rows = rng.normal(0.0, 0.7, (rows_lat, k))
        if nan:
            lon_v_rows[rng.integers(rows_lon), rng.integers(k)] = np.nan
        b = int(rng.integers(1, 40))
        jv, jl = rng.integers(0, rows_lon, b), rng.integers(0, rows_lat, b)
        road_curv = rng.normal(0.0, 0.002, (b, k)) if curved else np.zeros((0, k))
        args = (jv, jl, lon_x_rows, lon_v_rows, lat_a_rows, road_curv, lat_overlap_rows)
        lon_w, feasible = batch_terms(*args, obs.s_obj_rel, obs.inv_half_l, obs.s_ref_m, 1.4, 0.2, 4.0)
        ref_w, ref_feasible = _ref_batch(obs, *args, 1.4, 0.2, 4.0)
        assert lon_w.dtype == ref_w.dtype and np.array_equal(lon_w, ref_w, equal_nan=True)
        assert np.array_equal(feasible, ref_feasible)
        # The RSS rule, and the lazy best-first pick that applies it.
        s_b, v_b = lon_x_rows.take(jv, axis=0), lon_v_rows.take(jv, axis=0)
        lat_b = lat_overlap_rows.take(jl, axis=0)
        unsafe = obs.unsafe_following(s_b + 3.7, v_b, lat_b, 0.5, 6.0)
        assert np.array_equal(unsafe, _ref_unsafe_following(obs, s_b + 3.7, v_b, lat_b, 0.5, 6.0))
        seen += [feasible.sum(), (~feasible).sum(), unsafe.sum(), (~unsafe).sum()]
        total = np.where(feasible, rng.uniform(0.0, 10.0, b), np.inf)
        changes_lane = rng.random(b) < 0.5
        want, pool = -1, total.copy()
        while want < 0 and np.isfinite(pool).any():
            i = int(np.argmin(pool))
            if changes_lane[i] and unsafe[i]:
                pool[i] = np.inf
            else:
                want = i
        got = best_rss_safe(total.copy(), changes_lane, s_b, v_b, lat_overlap_rows, jl, obs.stop_rel,
                            obs.rear_rel, obs.s_ref_m, 3.7, 0.5, 6.0, np.inf)
        assert got == want
    assert (seen > 10).all(), seen  # both outcomes of both checks were exercised


# --- reference: select_leads' numpy form (before the lead search was compiled) ---
def _ref_select_leads(ft, s_ego_m, d_lanes_m, ego_front_m, ego_half_width_m, margin_m, cut_in_horizon_s):
    n_l = d_lanes_m.shape[0]
    if len(ft) == 0:
        return np.full(n_l, -1), np.full(n_l, np.inf)
    d_end = ft.d_m + ft.vd_mps * cut_in_horizon_s
    lo, hi = np.minimum(ft.d_m, d_end), np.maximum(ft.d_m, d_end)
    lat = np.maximum(np.maximum(lo[None, :] - d_lanes_m[:, None], d_lanes_m[:, None] - hi[None, :]), 0.0)
    in_corridor = lat < ego_half_width_m + 0.5 * ft.width_m + margin_m
    half_length, ego_front = 0.5 * ft.length_m, s_ego_m + ego_front_m
    gap = ft.s_m - half_length - ego_front
    ahead = ft.s_m + half_length > ego_front
    cand = np.where(in_corridor & ahead, gap, np.inf)
    i = np.argmin(cand, axis=1)
    g = cand.min(axis=1)
    return np.where(np.isfinite(g), i, -1), g


def test_select_leads_kernel_equals_numpy_reference():
    from planning.track_frenet import FrenetTracks, select_leads
    rng = np.random.default_rng(7)
    for case in range(400):
        n = int(rng.integers(0, 9))
        s = rng.uniform(80.0, 160.0, n)
        d = rng.choice([-3.5, 0.0, 3.5], n) + rng.normal(0.0, 0.8, n)
        vd = rng.normal(0.0, 0.8, n) * (rng.random(n) < 0.4)
        length, width = rng.uniform(3.0, 6.0, n), rng.uniform(1.5, 2.5, n)
        if n and case % 6 == 0:  # ties in gap, NaN and inf entries
            s[-1] = s[0]
            length[-1] = length[0]
        if n and case % 9 == 0:
            [s, d, vd, length, width][case % 5][int(rng.integers(0, n))] = rng.choice([np.nan, np.inf, -np.inf])
        z = np.zeros(n)
        ft = FrenetTracks(np.arange(n), s, d, z + 20.0, vd, z + 20.0, length, width, z, z, z, z, z)
        lanes = np.array([-3.5, 0.0, 3.5]) + (np.nan if case == 13 else 0.0) * (np.arange(3) == 1)
        args = (float(rng.uniform(90.0, 120.0)), lanes, 3.9, 0.95, 0.3, 2.0)
        i, g = select_leads(ft, *args)
        i_ref, g_ref = _ref_select_leads(ft, *args)
        assert np.array_equal(i, i_ref), case
        assert np.array_equal(g, g_ref, equal_nan=True), case


def test_read_only_tracks_pass_through_the_lead_search():
    # A Tracks decoded from a log holds read-only arrays; the Frenet tracks built from it are made
    # read-only too (tracks_to_frenet copies, but a FrenetTracks may hold views of such arrays), so
    # that the lead search is run on read-only fields.
    from core.messages import Tracks
    from planning.track_frenet import select_leads, tracks_to_frenet
    from sim.scenario import build_road, load_scenario
    n = 3
    fields = dict(ids=np.arange(n, dtype=np.int64), states=np.array([[30.0, 0.2, 20.0, 0.0], [60.0, 3.4, 22.0, 0.0],
                                                                       [90.0, -0.1, 18.0, 0.0]]),
                  covariances=np.tile(np.eye(4), (n, 1, 1)), yaws=np.zeros(n), sizes=np.tile([4.5, 1.9, 1.5], (n, 1)),
                  labels=np.zeros(n, np.int16), existence=np.ones(n))
    for a in fields.values():
        a.flags.writeable = False
    road = build_road(load_scenario("free_road").road)
    ft, n_bad = tracks_to_frenet(Tracks(t_ns=0, **fields), road, 0, 0.5)
    assert n_bad == 0 and len(ft) == n
    for name in type(ft).__slots__:
        getattr(ft, name).flags.writeable = False
    idx, gap = select_leads(ft, float(ft.s_m[0]) - 20.0, np.array([float(ft.d_m[0])]), 3.9, 0.95, 0.3, 2.0)
    assert idx[0] == 0 and gap[0] > 0.0


def test_sum_products_f32_is_numpy_einsum_to_the_bit():
    """The search's proximity sum (lattice_batch.search_batch) is np.einsum("bnk,bnk->b") of the
    float32 weights, per b: the kernel must give einsum's bits for any object count and length."""
    from planning.lattice_batch import sum_products_f32
    rng = np.random.default_rng(0)
    for case in range(2000):
        b, n, k = int(rng.integers(1, 6)), int(rng.integers(0, 9)), int(rng.choice([1, 3, 16, 17, 33, 51, 64]))
        x = (rng.random((b, n, k)) * 10.0 ** rng.integers(-3, 3)).astype(np.float32)
        y = (rng.random((b, n, k)) * 10.0 ** rng.integers(-3, 3)).astype(np.float32)
        if case % 10 == 0 and x.size:
            x.flat[int(rng.integers(0, x.size))] = np.nan
        ref = np.einsum("bnk,bnk->b", x, y)
        got = np.array([sum_products_f32(x[j].ravel(), y[j].ravel()) for j in range(b)], np.float32)
        nan = np.isnan(ref)
        assert np.array_equal(nan, np.isnan(got)) and ref[~nan].tobytes() == got[~nan].tobytes()


@pytest.mark.parametrize("start_pose", [(0.0, 0.0, 0.0), (3.0, -2.0, 0.4)])
def test_curved_road_rates_kernel_equals_numpy_reference(start_pose):
    """tracks_to_frenet's velocities on a curved road (_curved_road_rates) against the numpy form, to
    the bit: arc lengths off both ends and at 0.0 and -0.0, offsets past the centre of curvature
    (the 1 - k d floor), read-only columns, signed zeros, NaN and inf (NaN where NaN: its sign is
    the operand order's)."""
    segments = (RoadSegment(150.0, 0.02), RoadSegment(100.0), RoadSegment(200.0, -0.05), RoadSegment(57.3, 0.004))
    road = Road(segments, num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0, start_pose=start_pose)
    rng = np.random.default_rng(21)
    for trial in range(300):
        n = int(rng.integers(0, 12))
        cols = rng.normal(0.0, 10.0, (4, n))
        s, d, vx, vy = cols
        s[:] = rng.uniform(-20.0, road.length_m + 20.0, n)
        d *= rng.choice([1.0, 5.0], n)
        if n:
            s[rng.random(n) < 0.1] = rng.choice([0.0, -0.0, road.length_m])
            vx[rng.random(n) < 0.1], vy[rng.random(n) < 0.1] = -0.0, 0.0
            if trial % 10 == 0:
                cols[rng.integers(4), rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
        cols.flags.writeable = False
        with np.errstate(all="ignore"):
            want = numpy_curved_road_rates(road, s, d, vx, vy)
        got = _curved_road_rates(s, d, vx, vy, road.s_m, road.heading_rad, road.curvature_1pm, road.length_m,
                                 road.samples_per_m)
        for g, w in zip(got, want):
            nan = np.isnan(w)
            assert np.array_equal(np.isnan(g), nan) and g[~nan].tobytes() == w[~nan].tobytes(), trial


def test_curve_preview_speed_kernel_equals_numpy_reference():
    """target_speed's curve preview (_curve_preview_speed) against its numpy form, to the bit: ego
    positions before, on and past the road, NaN, previews long and short, one whose linspace step
    underflows to zero."""
    from planning.acc_planner import _curve_preview_speed, numpy_curve_preview_speed

    segments = (RoadSegment(150.0, 0.02), RoadSegment(100.0), RoadSegment(200.0, -0.05), RoadSegment(57.3, 0.0))
    road = Road(segments, num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
    rng = np.random.default_rng(31)
    for trial in range(2000):
        s = float(rng.choice([rng.uniform(-50.0, road.length_m + 50.0), 0.0, -0.0, road.length_m, np.nan]))
        preview = float(rng.choice([rng.uniform(0.0, 200.0), 5e-324, 0.0, 150.0, np.nan]))
        lat, two_decel = float(rng.uniform(0.5, 5.0)), float(rng.choice([2.0, rng.uniform(0.0, 8.0)]))
        with np.errstate(all="ignore"):
            want = numpy_curve_preview_speed(road, s, preview, lat, 0.5 * two_decel)
        got = _curve_preview_speed(s, preview, road.curvature_1pm, road.length_m, road.samples_per_m, lat, two_decel)
        assert (math.isnan(got) and math.isnan(want)) or np.float64(got).tobytes() == np.float64(want).tobytes(), trial
