"""Per-config tables and the fast paths of the lattice planner against their reference forms."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from acc_loop import make_tracks, straight_road
from core.messages import EgoState, ModeLimits
from core.road import Road, RoadSegment
from planning.acc_law import desired_accel
from planning.acc_law import rollout_profiles
from planning.acc_planner import target_speed
from planning.behaviour import LaneReferences, _crossed, lane_references
from planning.frenet_plan import lane_stretch
from planning.lattice import LatticeConfig, LatticeState, lattice_plan_step
from planning.lattice_grid import lateral_family, lateral_family_tabled, longitudinal_family
from planning.lattice_tables import build_tables, tables_for
from planning.prediction import PredictionParams, predict
from planning.track_frenet import (curvature_at, lane_centre_of, road_heading_curvature, select_lead, select_leads,
                                   tracks_to_frenet)
from test_lattice_bounds_kernel import longitudinal_family_tabled  # the lattice kernel's numpy reference

CFG = LatticeConfig(budget_ns=10**12)


def test_tabled_families_equal_direct_polynomials():
    tab = build_tables(CFG)
    targets = np.array([-3.5, 0.0, 3.5])
    direct = lateral_family(0.3, -0.2, 0.1, targets, tab.horizons_s, tab.t_s)
    tabled = lateral_family_tabled(tab.lat_map, 0.3, -0.2, 0.1, targets)
    extra = np.random.default_rng(0).normal(size=(4, 3, tab.steps))
    lon_d, v_d = longitudinal_family(120.0, 22.0, -0.5, tab.levels_mps2, tab.horizons_s, 30.0, tab.t_s)
    lon_t, v_t = longitudinal_family_tabled(tab.lon_map, tab.lon_end_speed_blocks, tab.horizons_s, 120.0, 22.0, -0.5,
                                            tab.levels_mps2, 30.0, extra)
    n_v = tab.levels_mps2.shape[0]
    for f in ("x", "v", "a", "j"):
        assert np.allclose(getattr(direct, f), getattr(tabled, f), atol=1e-9)
        assert np.allclose(getattr(lon_d, f), getattr(lon_t, f)[:n_v], atol=1e-9)
    # The extra rows are the given profiles, for every horizon.
    assert np.array_equal(lon_t.x[n_v:], np.broadcast_to(extra[0][:, None, :], (3, tab.horizons_s.shape[0], tab.steps)))
    assert np.array_equal(v_d, v_t)


def test_tables_rebuilt_only_when_the_grid_changes():
    tab = build_tables(CFG)
    assert tables_for(tab, replace(CFG, w_speed=3.0)) is tab  # costs do not touch the tables
    other = tables_for(tab, replace(CFG, num_accel_levels=9))
    assert other is not tab and other.levels_mps2.shape == (9,)
    # The planner carries its tables in its state: built on the first step, reused after.
    road = straight_road()
    ego = EgoState(0, np.array([100.0, 0.0, 0.0]), 20.0, 0.0, 0.0, np.eye(5))
    st, _ = lattice_plan_step(LatticeState(), ego, make_tracks(0, np.zeros((0, 2)), np.zeros((0, 2))),
                              ModeLimits(), road, 0, CFG, lambda: 0)
    assert st.tables is not None
    st2, _ = lattice_plan_step(st, ego, make_tracks(0, np.zeros((0, 2)), np.zeros((0, 2))), ModeLimits(), road,
                               0, CFG, lambda: 0)
    assert st2.tables is st.tables


def test_select_leads_matches_select_lead_per_lane():
    rng = np.random.default_rng(3)
    xy = np.column_stack([rng.uniform(80, 200, 12), rng.choice([-3.5, 0.0, 3.5], 12) + rng.normal(0, 0.3, 12)])
    v = np.column_stack([rng.uniform(10, 25, 12), rng.normal(0, 1.0, 12)])
    ft, _ = tracks_to_frenet(make_tracks(0, xy, v), straight_road(), 0, 0.3)
    lanes = np.array([-3.5, 0.0, 3.5])
    idx, gaps = select_leads(ft, 100.0, lanes, 3.7, 0.95, 0.3, 1.5)
    for j, d in enumerate(lanes):
        assert (int(idx[j]), float(gaps[j])) == select_lead(ft, 100.0, float(d), 3.7, 0.95, 0.3, 1.5)
    empty, _ = tracks_to_frenet(make_tracks(0, np.zeros((0, 2)), np.zeros((0, 2))), straight_road(), 0, 0.3)
    idx, gaps = select_leads(empty, 100.0, lanes, 3.7, 0.95, 0.3, 1.5)
    assert idx.tolist() == [-1, -1, -1] and np.isinf(gaps).all()


@pytest.mark.parametrize("segments", [
    (RoadSegment(200.0), RoadSegment(700.0, 0.004), RoadSegment(600.0)),
    # Not a multiple of the 0.5 m sample spacing long: the lookups index with the road's own spacing.
    (RoadSegment(100.3), RoadSegment(157.1, 0.02), RoadSegment(80.7, -0.03)),
])
def test_scalar_road_lookups_equal_interpolate(segments):
    road = Road(segments, 3, 3.5, 20.0)
    s = np.random.default_rng(1).uniform(-10.0, road.length_m + 100.0, 500)
    # Just past each join, where indexing with the wrong spacing reads the previous segment's sample.
    joins = np.cumsum([seg.length_m for seg in segments])[:-1]
    s = np.concatenate([s, road.s_m[np.searchsorted(road.s_m, joins, side="right")] + 0.1])
    _, heading, kappa = road.interpolate(s)
    assert np.array_equal(curvature_at(road, s), kappa)
    scalar = np.array([road_heading_curvature(road, float(x)) for x in s])
    assert np.array_equal(scalar[:, 0], heading) and np.array_equal(scalar[:, 1], kappa)


def test_lane_centre_of_equals_the_road_lookups():
    road = Road((RoadSegment(200.0),), 4, 3.25, 20.0)
    d = np.concatenate([np.random.default_rng(2).uniform(-12.0, 12.0, 500), np.arange(-3, 4) * 3.25, [0.0, -0.0]])
    assert np.array_equal(lane_centre_of(road, d), road.lane_center_d(road.lane_of(d)))


def _reference_desired_accel(v, v_target, gap_m, v_lead, a_lead, stop_decel_mps2, g):
    """The ACC law written with min()/max(), as it read before its clamps became conditional
    expressions: the fast form must return exactly this."""
    a = min(max(g.k_speed_1ps * (v_target - v), -g.cruise_decel_mps2), g.comfort_accel_mps2)
    if stop_decel_mps2 > 0.0 and v > 0.0:
        a = min(a, -stop_decel_mps2)
    if not math.isfinite(gap_m):
        return a, False, False
    closing = max(v - v_lead, 0.0)
    safe_gap = gap_m - g.standstill_gap_m - closing * g.reaction_s
    b_safe = (closing * closing) / (2.0 * safe_gap) if safe_gap > 0.0 else (0.0 if closing == 0.0 else math.inf)
    if a_lead < -g.lead_brake_threshold_mps2 or v_lead < 0.5:
        stop_gap = safe_gap + v_lead * v_lead / (2.0 * max(-a_lead, g.lead_brake_threshold_mps2))
        if v > 0.0:
            b_safe = max(b_safe, v * v / (2.0 * stop_gap) if stop_gap > 0.0 else math.inf)
    if b_safe > g.comfort_decel_mps2:
        return -min(b_safe, g.max_decel_mps2), True, True
    e_lin = gap_m - (g.standstill_gap_m + g.time_gap_s * v)
    a_follow = g.k_rel_speed_1ps * (v_lead - v) + g.k_gap_1ps2 * e_lin
    e_lead = gap_m - (g.standstill_gap_m + g.time_gap_s * v_lead)
    if e_lin > 0.0:
        v_ref = v_lead + math.sqrt(2.0 * g.approach_decel_mps2 * max(e_lead, 0.0))
        a_follow = min(a_follow, g.k_rel_speed_1ps * (v_ref - v))
    if b_safe > 0.5 * g.comfort_decel_mps2:
        a_follow = min(a_follow, -b_safe)
    return max(min(a, a_follow), -g.comfort_decel_mps2), False, a_follow < a


def test_acc_law_clamps_keep_min_max_results():
    g = CFG.acc.gains(CFG.acc.time_gap_s)
    rng = np.random.default_rng(3)
    cases = 0
    for _ in range(5000):
        v, v_target, v_lead = rng.uniform(-1.0, 35.0), rng.uniform(0.0, 35.0), rng.choice([0.0, rng.uniform(0.0, 35.0)])
        gap = rng.choice([math.inf, rng.uniform(-5.0, 150.0)])
        a_lead = rng.choice([0.0, rng.uniform(-8.0, 2.0)])
        stop = rng.choice([0.0, rng.uniform(1.0, 5.0)])
        args = (float(v), float(v_target), float(gap), float(v_lead), float(a_lead), float(stop), g)
        assert desired_accel(*args) == _reference_desired_accel(*args)
        cases += desired_accel(*args)[1]
    assert cases > 100  # the emergency branch was exercised, not only cruise and follow


def test_lane_references_roll_out_the_acc_law_per_lane():
    road = straight_road()
    tab = build_tables(CFG)
    # A slow lead in the ego lane, nothing in the neighbours: their two roll-outs are the same.
    ft, _ = tracks_to_frenet(make_tracks(0, np.array([[140.0, 0.0]]), np.array([[10.0, 0.0]])), road, 0, 0.3)
    refs = lane_references(ft, np.zeros(1), 100.0, 1, 25.0, 0.0, ModeLimits(), road, 0.0, CFG.acc, tab.t_ref_s,
                           tab.interp_ref)
    assert refs.own_lead_index == 0 and refs.valid.all()
    assert np.array_equal(refs.centre_d_m, road.lane_center_d(refs.lanes))
    assert np.array_equal(refs.v_mps[0], refs.v_mps[2]) and refs.v_mps[0, -1] > refs.v_mps[1, -1] + 5.0
    # Step 0 of a roll-out is one comfort-jerk step of the law from a0.
    g = CFG.acc.gains(CFG.acc.time_gap_s)
    a_des, _, _ = desired_accel(25.0, 30.0, math.inf, 0.0, 0.0, 0.0, g)
    assert refs.a_mps2[0, 0] == pytest.approx(min(a_des, g.comfort_jerk_mps3 * tab.ref_step_s))


def test_lane_changer_blocks_lane_changes_across_its_path():
    road = straight_road()
    tab = build_tables(CFG)
    # A car 20 m ahead moving from the left lane into the ego lane: no lane change at all.
    ft, _ = tracks_to_frenet(make_tracks(0, np.array([[120.0, 2.0]]), np.array([[20.0, -1.4]])), road, 0, 0.3)
    refs = lane_references(ft, np.zeros(1), 100.0, 1, 24.0, 0.0, ModeLimits(), road, 0.0, CFG.acc, tab.t_ref_s,
                           tab.interp_ref)
    assert refs.valid.tolist() == [False, True, False]
    # The same car keeping its lane blocks nothing.
    ft, _ = tracks_to_frenet(make_tracks(0, np.array([[120.0, 3.5]]), np.array([[20.0, 0.1]])), road, 0, 0.3)
    refs = lane_references(ft, np.zeros(1), 100.0, 1, 24.0, 0.0, ModeLimits(), road, 0.0, CFG.acc, tab.t_ref_s,
                           tab.interp_ref)
    assert refs.valid.all()


def test_prediction_holds_static_objects_and_ends_lane_changes_at_a_centre():
    road = straight_road()
    t = np.arange(51) * 0.1
    ft, _ = tracks_to_frenet(make_tracks(0, np.array([[150.0, 0.0], [120.0, 2.0], [130.0, -3.5]]),
                                         np.array([[0.3, 0.4], [20.0, -1.4], [20.0, 0.2]])), road, 0, 0.3)
    pred = predict(ft, np.zeros(3), road, t, PredictionParams())
    # Static: velocity noise is not rolled out, and its uncertainty grows slowly.
    assert np.array_equal(pred.s_m[0], np.full(51, pred.s_m[0, 0])) and np.array_equal(pred.d_m[0], np.full(51, pred.d_m[0, 0]))
    assert pred.sigma_d_m[0, -1] < pred.sigma_d_m[2, -1]
    # A lane changer stops at the centre it heads for (the decayed drift alone would overshoot it to
    # -0.56 m); a lane keeper with a little lateral noise stays in its lane.
    assert pred.d_m[1, -1] == pytest.approx(0.0) and pred.d_m[1].min() >= 0.0
    assert np.allclose(pred.d_m[2], -3.5)


# --- reference: lane_references before its three lanes became one kernel ---
def _python_lane_references(ft: FrenetTracks, accel_tracks_mps2: np.ndarray, s_ego_m: float, lane: int,
                    v0_mps: float, a0_mps2: float, limits: ModeLimits, road: Road, kappa_1pm: float,
                    acc: AccPlannerConfig, t_ref_s: np.ndarray, interp_ref: np.ndarray,
                    end_gap_m: float = math.inf) -> LaneReferences:
    """The Python form before _lane_rollouts (session 16), the reference: per lane in Python floats."""
    if not 0 <= lane < road.num_lanes:  # the ego lane's roll-out stands in for every invalid lane
        raise ValueError(f"ego lane {lane} is not a lane of a {road.num_lanes}-lane road")
    # Three lanes: their validity in plain Python (numpy calls on 3 elements cost more than the logic).
    lanes = np.array([lane - 1, lane, lane + 1], dtype=np.int64)
    may_change = limits.lane_change_allowed and limits.stop_decel_mps2 <= 0.0
    valid_py = [0 <= ln < road.num_lanes and (ln == lane or may_change) for ln in (lane - 1, lane, lane + 1)]
    # While someone crosses into or out of the ego lane, keep the lane and let the ACC law react: a
    # lane change then would start from a half-reacted speed and race the crossing car.
    crossed = (np.zeros(3, bool) if len(ft) == 0 else
               _crossed(ft.s_m, ft.d_m, ft.vd_mps, float(s_ego_m), lanes, road.lane_width_m, road.num_lanes,
                        acc.lane_changer_speed_mps, acc.lane_changer_behind_m, acc.lane_changer_ahead_m,
                        acc.cut_in_horizon_s)).tolist()
    for j in (0, 2):
        valid_py[j] = valid_py[j] and not (crossed[j] or crossed[1])
    valid = np.array(valid_py)
    v_target = target_speed(road, s_ego_m, v0_mps, limits, acc)
    gains = acc.gains_array(max(acc.time_gap_s, limits.time_gap_s))
    ref_steps, reference_step_s = interp_ref.shape[1], float(t_ref_s[1] - t_ref_s[0])
    centres_py = [(ln - 0.5 * (road.num_lanes - 1)) * road.lane_width_m for ln in (lane - 1, lane, lane + 1)]
    centres = np.array(centres_py)
    stretch_py = [lane_stretch(kappa_1pm, c) for c in centres_py]  # exactly 1.0 on a straight road
    targets = [v_target / st for st in stretch_py]
    leads, gaps = select_leads(ft, s_ego_m, centres, acc.ego_front_m, acc.ego_half_width_m,
                               acc.corridor_margin_m, acc.cut_in_horizon_s)
    leads, gaps = leads.tolist(), gaps.tolist()
    speeds, accels = ft.s_rate_mps.tolist(), accel_tracks_mps2.tolist()
    coarse = np.empty((3, 3, ref_steps))  # per lane: distance, speed, acceleration on the coarse grid
    done: dict[tuple, int] = {}  # identical roll-out inputs (two free neighbour lanes): run once
    emergency = False
    for j in (1, 0, 2):  # the three lanes: a fixed, tiny loop; the lead search is vectorised above
        i = leads[j]
        key = (gaps[j], speeds[i] if i >= 0 else 0.0, accels[i] if i >= 0 else 0.0, targets[j])
        if not valid_py[j] or key in done:
            coarse[j] = coarse[1] if not valid_py[j] else coarse[done[key]]
            continue
        coarse[j], emerg, _ = rollout_profiles(v0_mps, a0_mps2, key[3], key[0], key[1], key[2],
                                               limits.stop_decel_mps2, gains, reference_step_s, ref_steps, end_gap_m)
        done[key] = j
        if j == 1:
            emergency = emerg
    # (3, 3, K): linear interpolation onto the plan grid, one product.
    out = coarse @ interp_ref.T
    return LaneReferences(lanes, centres, np.array(stretch_py), valid, out[:, 0], out[:, 1], out[:, 2], emergency,
                          leads[1])


@pytest.mark.parametrize("curved", [False, True])
def test_lane_references_kernel_equals_python_reference(curved):
    """lane_references (one compiled call for the three lanes) against the Python form, to the bit:
    random tracks around the ego (lane changers, leads, none), lanes at both road edges, modes that
    forbid lane changes, the road's end, shared roll-outs of free neighbours."""
    segments = (RoadSegment(300.0, 0.01), RoadSegment(700.0)) if curved else (RoadSegment(1000.0),)
    tab = build_tables(CFG)
    rng = np.random.default_rng(5 + curved)
    shared = 0
    for trial in range(400):
        num_lanes = int(rng.integers(1, 5))
        road = Road(segments, num_lanes=num_lanes, lane_width_m=3.5, speed_limit_mps=float(rng.uniform(10.0, 35.0)))
        n = int(rng.integers(0, 6))
        pos = np.column_stack([rng.uniform(80.0, 220.0, n), rng.uniform(-road.half_width_m, road.half_width_m, n)])
        vel = np.column_stack([rng.uniform(0.0, 30.0, n), rng.choice([0.0, 0.3, -1.5, 1.5], n)])
        ft, _ = tracks_to_frenet(make_tracks(0, pos, vel), road, 0, 0.3)
        accel = rng.choice([0.0, -0.0, -3.0, 1.0], len(ft))
        lane = int(rng.integers(0, num_lanes))
        limits = ModeLimits(lane_change_allowed=bool(rng.random() < 0.8),
                            stop_decel_mps2=float(rng.choice([0.0, 0.0, 2.0])),
                            speed_cap_mps=float(rng.choice([math.inf, 15.0])))
        v0, a0 = float(rng.uniform(0.0, 30.0)), float(rng.uniform(-3.0, 1.5))
        kappa = float(rng.choice([0.0, 0.01, -0.02])) if curved else 0.0
        end_gap = float(rng.choice([math.inf, rng.uniform(5.0, 200.0)]))
        args = (ft, accel, 150.0, lane, v0, a0, limits, road, kappa, CFG.acc, tab.t_ref_s, tab.interp_ref, end_gap)
        got, want = lane_references(*args), _python_lane_references(*args)
        for f in LaneReferences.__slots__:
            g, w = getattr(got, f), getattr(want, f)
            if isinstance(w, np.ndarray):
                assert g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes(), (trial, f)
            else:
                assert type(g) is type(w) and g == w, (trial, f)
        shared += bool(np.array_equal(want.s_m[0], want.s_m[2]) and want.valid[0] and want.valid[2])
    assert shared > 10  # free neighbours shared one roll-out
