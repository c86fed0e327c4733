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
from planning.behaviour import lane_references
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
