"""Anytime Frenet lattice planner."""
from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import replace

import numpy as np
import pytest

from acc_loop import make_tracks, run_loop, straight_road
from core.messages import EgoState, ModeLimits, Tracks
from planning.lattice import LatticeConfig, LatticeState, lattice_plan_step
from planning.lattice_grid import lateral_family, longitudinal_family
from planning.lattice_batch import batch_terms
from planning.lattice_obstacles import obstacle_terms
from planning.prediction import Prediction

CFG = LatticeConfig(budget_ns=10**12)
NO_LC = ModeLimits(lane_change_allowed=False)


def never():
    return 0


def ego_at(x=100.0, y=0.0, v=20.0, t_ns=0):
    return EgoState(t_ns, np.array([x, y, 0.0]), v, 0.0, 0.0, np.eye(5))


def step(ego, tracks, limits=ModeLimits(), state=None, cfg=CFG, timer=never, road=None):
    return lattice_plan_step(state or LatticeState(), ego, tracks, limits, road or straight_road(), ego.t_ns,
                             cfg, timer)


def box_overlap(plan, x_obj, y_obj, length=4.6, width=1.9, rear_to_center=1.4):
    cx = plan.xy_m[:, 0] + rear_to_center * np.cos(plan.yaw_rad)
    return (np.abs(cx - x_obj) < length) & (np.abs(plan.xy_m[:, 1] - y_obj) < width)


def test_candidate_through_obstacle_has_collision_bits():
    t = np.arange(51) * 0.1
    lat = lateral_family(0.0, 0.0, 0.0, np.array([0.0, 3.5]), np.array([3.0]), t)
    lon, _ = longitudinal_family(0.0, 20.0, 0.0, np.array([0.0]), np.array([3.0]), 30.0, t)
    # A stopped car 70 m ahead in the ego lane, reached after the 3 s lane change.
    pred = Prediction(t, np.full((1, 51), 70.0), np.zeros((1, 51)), np.full((1, 51), 0.3), np.full((1, 51), 0.3),
                      np.array([4.6]), np.array([1.9]), np.zeros(1, np.int8))
    obs = obstacle_terms(pred, lat.x, 4.6, 1.9, 1.0, 0.2, 1.0, np.zeros(1, bool))
    # Longitudinal row 0 against lateral rows 0 (straight) and 1 * n_T (the lane change); without
    # curvature limits a candidate is infeasible exactly when it collides.
    n_t = lat.x.shape[1]
    _, feasible = batch_terms(np.array([0, 0]), np.array([0, n_t]), lon.x.reshape(-1, 51), lon.v.reshape(-1, 51),
                              lat.a.reshape(-1, 51), np.zeros((0, 51)),
                              obs.lat_overlap.reshape((-1,) + obs.lat_overlap.shape[2:]), obs.s_obj_rel,
                              obs.inv_half_l, obs.s_ref_m, 1.4, np.inf, np.inf)
    hits = ~feasible
    assert hits.tolist() == [True, False]  # straight through collides, the lane change clears it


def test_stopped_obstacle_avoided_in_plan():
    tracks = make_tracks(0, np.array([[150.0, 0.0]]), np.zeros((1, 2)))
    state, plan = step(ego_at(v=20.0), tracks, NO_LC)
    assert not box_overlap(plan, 150.0, 0.0).any()
    assert plan.speed_mps[-1] < plan.speed_mps[0]
    state, plan = step(ego_at(v=20.0), tracks)
    assert not box_overlap(plan, 150.0, 0.0).any()
    assert state.evaluated > 0


def test_lane_change_when_lead_slow_and_left_lane_free():
    tracks = make_tracks(0, np.array([[140.0, 0.0]]), np.array([[12.0, 0.0]]))
    _, plan = step(ego_at(v=25.0), tracks)
    assert plan.behaviour.startswith("lane_change")
    assert abs(abs(plan.xy_m[-1, 1]) - 3.5) < 0.3
    # Not worthwhile for a lead that is barely slower than the limit: keep the lane.
    tracks = make_tracks(0, np.array([[160.0, 0.0]]), np.array([[29.5, 0.0]]))
    _, plan = step(ego_at(v=28.0), tracks)
    assert np.allclose(plan.xy_m[:, 1], 0.0, atol=0.05)
    # Not safe: both neighbour lanes occupied alongside.
    tracks = make_tracks(0, np.array([[140.0, 0.0], [102.0, 3.5], [102.0, -3.5]]),
                         np.array([[12.0, 0.0], [25.0, 0.0], [25.0, 0.0]]))
    _, plan = step(ego_at(v=25.0), tracks)
    assert np.abs(plan.xy_m[:20, 1]).max() < 0.5


def test_deadline_returns_best_so_far():
    calls = []

    def fake_timer():
        calls.append(1)
        return 0 if len(calls) == 1 else 10**15  # the budget is gone after the first batch

    # A car close ahead in the ego lane: the proximity term (evaluated per batch) tells the lane
    # change candidates apart, so the exhaustive search needs several batches and the deadline cuts
    # it short.
    cfg = replace(CFG, batch_size=4, budget_ns=1000, w_proximity=50.0)
    tracks = make_tracks(0, np.array([[115.0, 0.0]]), np.array([[22.0, 0.0]]))
    state, plan = step(ego_at(v=22.0), tracks, cfg=cfg, timer=fake_timer)
    full_state, full_plan = step(ego_at(v=22.0), tracks, cfg=replace(cfg, budget_ns=10**12))
    assert state.evaluated == 4 and state.deadline_hits == 1 and len(calls) == 2
    assert full_state.evaluated > 4 and full_state.deadline_hits == 0
    assert state.infeasible == 0 and not plan.emergency  # the best of the first batch, not the fallback
    assert np.abs(plan.xy_m - full_plan.xy_m).max() > 0.5  # the full search found a different path


def test_growing_batches_find_the_same_plan_with_less_work():
    # Without a deadline the search returns the first candidate in bound order with the least total
    # cost, whatever the batch sizes: a short first batch only saves the candidates it never visits.
    tracks = make_tracks(0, np.array([[115.0, 0.0], [150.0, 3.5], [90.0, -3.5]]),
                         np.array([[22.0, 0.0], [24.0, 0.0], [26.0, 0.0]]))
    plans, evaluated = [], []
    for first in (1, 8, 64):
        for prox in (2.0, 50.0):  # 50: proximity sets candidates apart, the search needs several batches
            state, plan = step(ego_at(v=22.0), tracks, cfg=replace(CFG, first_batch_size=first, w_proximity=prox))
            plans.append((prox, plan))
            evaluated.append((first, prox, state.evaluated))
    for prox in (2.0, 50.0):
        same = [p for w, p in plans if w == prox]
        for p in same[1:]:
            assert np.array_equal(p.xy_m, same[0].xy_m) and np.array_equal(p.speed_mps, same[0].speed_mps)
            assert p.behaviour == same[0].behaviour
    counts = {(first, prox): n for first, prox, n in evaluated}
    assert counts[(8, 2.0)] < counts[(64, 2.0)]
    assert counts[(8, 50.0)] > 8  # the hard scene grew past the first batch


def test_all_blocked_gives_emergency_profile():
    xs = np.array([[112.0, -3.5], [112.0, 0.0], [112.0, 3.5]])
    tracks = make_tracks(0, xs, np.zeros((3, 2)))
    state, plan = step(ego_at(v=25.0), tracks)
    assert plan.emergency and plan.behaviour == "emergency_brake" and state.infeasible == 1
    assert np.allclose(plan.xy_m[:, 1], 0.0)
    assert plan.accel_mps2.min() <= -CFG.max_decel_mps2 + 1e-6
    assert np.all(np.diff(plan.speed_mps) <= 1e-9)


def test_nan_tracks_ignored_and_counted():
    tracks = make_tracks(0, np.array([[140.0, 0.0], [np.nan, 0.0], [200.0, 3.5]]),
                         np.array([[20.0, 0.0], [0.0, 0.0], [20.0, np.inf]]))
    state, plan = step(ego_at(), tracks)
    assert state.ignored_tracks == 2 and state.track_ids.tolist() == [0]
    assert np.isfinite(plan.xy_m).all() and np.isfinite(plan.speed_mps).all()
    state, plan = step(ego_at(), Tracks.empty(0))
    assert state.ignored_tracks == 0 and plan.behaviour == "cruise"


def test_stale_and_bad_ego():
    road = straight_road()
    state, plan = lattice_plan_step(LatticeState(), ego_at(), Tracks.empty(int(1e9)), ModeLimits(), road,
                                    int(1e9), CFG, never)
    assert plan.emergency and plan.behaviour == "stale_ego" and state.stale_egos == 1
    with pytest.raises(ValueError, match="not finite"):
        step(replace(ego_at(), speed_mps=float("nan")), Tracks.empty(0))
    state2, plan2 = lattice_plan_step(state, replace(ego_at(), t_ns=int(1.1e9), pose=np.full(3, np.nan)),
                                      Tracks.empty(0), ModeLimits(), road, int(1.1e9), CFG, never)
    assert state2.rejected_egos == 1 and plan2.emergency and np.isfinite(plan2.xy_m).all()


def test_speed_cap_and_mrm():
    _, plan = step(ego_at(v=25.0), Tracks.empty(0), ModeLimits(speed_cap_mps=15.0))
    assert plan.speed_mps[-1] < 20.0 and np.all(np.diff(plan.speed_mps) <= 1e-6)
    _, plan = step(ego_at(v=15.0), make_tracks(0, np.array([[300.0, 3.5]]), np.array([[10.0, 0.0]])),
                   ModeLimits(stop_decel_mps2=2.5))
    assert plan.behaviour == "mrm" and np.allclose(plan.xy_m[:, 1], 0.0)
    assert plan.speed_mps[-1] < 5.0


def _lattice_loop_planner(state, ego, tracks, limits, road, t_ns):
    return lattice_plan_step(state, ego, tracks, replace(limits, lane_change_allowed=False), road, t_ns, CFG, never)


def test_closed_loop_follow_and_stop():
    road = straight_road(30.0)

    def lead(t):
        return np.array([[80.0 + 20.0 * t, 0.0]]), np.array([[20.0, 0.0]])

    _, log = run_loop(_lattice_loop_planner, LatticeState(), road, lead, 28.0, 30.0)
    assert abs(log[-1, 2] - 20.0) < 0.5 and abs(log[-1, 3] - 34.0) < 4.0

    def stopped(t):
        return np.array([[150.0, 0.0]]), np.zeros((1, 2))

    _, log = run_loop(_lattice_loop_planner, LatticeState(), road, stopped, 25.0, 25.0)
    # Stops short of the stopped car; further back than the ACC's 4 m by the prediction's inflation.
    assert log[-1, 2] < 0.05 and 1.0 < log[:, 3].min() < 12.0


def _no_or_two_tracks(n_tracks: int) -> Tracks:
    """No tracks, or a lead in the ego lane and a car in the next one."""
    if n_tracks == 0:
        return Tracks.empty(0)
    return make_tracks(0, np.array([[140.0, 0.0], [160.0, 3.5]]), np.array([[15.0, 0.0], [20.0, 0.3]]))


@pytest.mark.parametrize("n_tracks", [0, 2])
def test_repeated_calls_give_the_same_bits(n_tracks):
    """One process, the same inputs 100 times: one plan, bit for bit. A full-suite run once saw the
    zero-track plan of this very input flip between cruising and an emergency stop with every
    candidate rejected: numpy's einsum over the empty object axis (DESIGN.md, "No np.einsum over an
    axis that can be empty"). Should any flip recur, the message keeps what tells causes apart:
    how often each outcome came, the evaluated and infeasible counts, and the process's threads and
    floating-point control register."""
    tracks = _no_or_two_tracks(n_tracks)
    outcomes: dict[tuple, int] = {}
    for _ in range(100):
        state, plan = step(ego_at(), tracks)
        key = (plan.behaviour, state.evaluated, state.infeasible, plan.xy_m.tobytes(), plan.speed_mps.tobytes())
        outcomes[key] = outcomes.get(key, 0) + 1
    assert len(outcomes) == 1, (
        f"{len(outcomes)} different plans from one input: "
        + "; ".join(f"{b} evaluated {e} infeasible {i} xy[1] {np.frombuffer(xy)[2:4]}: {n}x"
                    for (b, e, i, xy, _), n in outcomes.items())
        + f"; threads {threading.active_count()} (OS {len(os.listdir('/proc/self/task'))}), MXCSR {_mxcsr():#06x}")


@pytest.mark.parametrize("n_tracks", [0, 2])
def test_no_einsum_over_an_empty_object_axis(n_tracks, monkeypatch):
    """With no object the proximity cost is zero without np.einsum: that product over the empty
    object axis can read a stale NaN, which made the rare track-free emergency plans (DESIGN.md).
    The search now sums the proximity weights in a kernel (lattice_batch.sum_products_f32, einsum's
    bits), whose sum over no object is zero: no einsum runs at all, with or without objects."""
    import planning.lattice as lattice

    calls = []
    real_einsum = np.einsum

    def einsum_checked(subscripts, *operands, **kwargs):
        calls.append((subscripts, [np.asarray(o).size for o in operands]))
        return real_einsum(subscripts, *operands, **kwargs)

    monkeypatch.setattr(lattice.np, "einsum", einsum_checked)
    tracks = _no_or_two_tracks(n_tracks)
    state, plan = step(ego_at(), tracks)
    assert not [c for c in calls if c[0] == "bnk,bnk->b"], calls
    assert plan.behaviour in ("cruise", "follow") and state.infeasible == 0


def _mxcsr() -> int:
    """The SSE control and status register of this thread (glibc's fenv_t keeps it at byte 28)."""
    env = (ctypes.c_ubyte * 32)()
    ctypes.CDLL("libm.so.6").fegetenv(env)
    return int.from_bytes(bytes(env[28:32]), "little")


def test_emergency_profile_holds_the_lateral_offset_mid_lane_change():
    # Half-way into the left lane with every lane blocked close ahead: brake where the car is rather
    # than steer back to the centre of the lane it came from (where the obstacle may be).
    xs = np.array([[110.0, -3.5], [110.0, 0.0], [110.0, 3.5]])
    state, plan = step(ego_at(y=1.2, v=25.0), make_tracks(0, xs, np.zeros((3, 2))))
    assert plan.emergency and state.infeasible == 1
    assert np.allclose(plan.xy_m[:, 1], plan.xy_m[0, 1], atol=1e-9) and abs(plan.xy_m[0, 1] - 1.2) < 0.05


@pytest.mark.parametrize("lane", [0, 2])
def test_plan_starts_at_the_ego_speed_on_a_curve_lane(lane):
    """The lattice plans in reference-line rates (v0 = v / (1 - k d)) and the plan converts back:
    off the reference line of a curve the plan starts at the ego's own speed, not at v / (1 - k d)
    (found in review: on the inner lane each replan asked for more speed than the last). The ACC
    planner's lane profile goes through the same conversion."""
    from core.road import Road, RoadSegment
    from planning import AccPlannerConfig, AccPlannerState, acc_plan_step

    road = Road((RoadSegment(200.0), RoadSegment(700.0, 0.02), RoadSegment(600.0)), 3, 3.5, 30.0)
    d_lane = float(road.lane_center_d(lane))
    xy, heading = road.to_cartesian(np.array([400.0]), np.array([d_lane]))
    ego = EgoState(0, np.array([xy[0, 0], xy[0, 1], heading[0]]), 10.0, 0.0, 0.0, np.eye(5))
    _, plan = step(ego, Tracks.empty(0), NO_LC, road=road)
    assert plan.speed_mps[0] == pytest.approx(10.0, abs=1e-6)
    _, acc_plan = acc_plan_step(AccPlannerState(), ego, Tracks.empty(0), NO_LC, road, 0, AccPlannerConfig())
    assert acc_plan.speed_mps[0] == pytest.approx(10.0, abs=1e-9)
    # Its positions move at its speed.
    v_xy = np.hypot(*np.diff(acc_plan.xy_m[:3], axis=0).T) / np.diff(acc_plan.t_s[:3])
    assert v_xy == pytest.approx(0.5 * (acc_plan.speed_mps[:2] + acc_plan.speed_mps[1:3]), abs=1e-3)
