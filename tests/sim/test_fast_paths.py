"""The per-tick fast paths agree bit for bit with the straightforward formulations they replace."""
import dataclasses
import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from core.geometry import box_corners_2d, boxes_overlap
from core.road import Road, RoadSegment
from core.vehicle import VehicleParams
from sim.metrics import MetricsRecorder
from sim.scenario import load_scenario
from sim.traffic import IdmParams, idm_accel
from sim.truth import ActorsTruth, EgoTruth
from sim.world import World

ROADS = {
    "straight": Road((RoadSegment(2000.0),), 3, 3.5, 25.0),
    "rotated_two_pieces": Road((RoadSegment(300.0), RoadSegment(300.0, 0.0)), 3, 3.5, 25.0,
                               start_pose=(1.0, 2.0, 0.3)),
    "s_bend": Road((RoadSegment(100.0), RoadSegment(300.0, -1 / 60.0), RoadSegment(50.0),
                    RoadSegment(700.0, 1 / 80.0)), 3, 3.5, 25.0, start_pose=(5.0, -3.0, 0.7)),
    "spiral_over_a_full_turn": Road((RoadSegment(500.0, 1 / 50.0),), 2, 3.5, 25.0),
}


def kdtree_frenet(road, xy):
    """The reference projection: KD-tree nearest sample, then its tangent."""
    _, i = cKDTree(road.xy_m).query(xy)
    delta = xy - road.xy_m[i]
    h = road.heading_rad[i]
    along = delta[..., 0] * np.cos(h) + delta[..., 1] * np.sin(h)
    lateral = -delta[..., 0] * np.sin(h) + delta[..., 1] * np.cos(h)
    s = road.s_m[i] + along / np.maximum(1.0 - road.curvature_1pm[i] * lateral, 1e-3)
    return i, s, lateral


@pytest.mark.parametrize("name", sorted(ROADS))
def test_nearest_sample_and_frenet_match_a_kdtree(name):
    road, rng = ROADS[name], np.random.default_rng(5)
    lo, hi = road.xy_m.min(axis=0) - 60.0, road.xy_m.max(axis=0) + 60.0
    near_road, _ = road.to_cartesian(rng.uniform(0.0, road.length_m, 4000), rng.uniform(-8.0, 8.0, 4000))
    xy = np.concatenate([rng.uniform(lo, hi, (4000, 2)), near_road])
    i_ref, s_ref, d_ref = kdtree_frenet(road, xy)
    assert np.array_equal(road.nearest_sample(xy), i_ref)
    s, d = road.to_frenet(xy)
    assert np.array_equal(s, s_ref) and np.array_equal(d, d_ref)


@pytest.mark.parametrize("name", ["straight", "rotated_two_pieces"])
def test_straight_to_cartesian_matches_the_general_interpolation(name):
    road, rng = ROADS[name], np.random.default_rng(6)
    s = np.concatenate([rng.uniform(-10.0, road.length_m + 10.0, 5000), [0.0, road.length_m]])
    d = rng.uniform(-8.0, 8.0, s.shape[0])
    ref, heading, _ = road.interpolate(s)
    xy_ref = ref + d[:, None] * np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
    xy, h = road.to_cartesian(s, d)
    assert np.array_equal(xy, xy_ref) and np.array_equal(h, heading)


ONE_POINT_ROADS = {
    **ROADS,
    # Curvature below the arc threshold: no arc pieces, yet not straight (per-sample headings).
    "barely_curved": Road((RoadSegment(500.0, 1e-13),), 3, 3.5, 30.0),
    # A point whose foot lies on a half-sample tie to the last bit: a fused multiply-add (as BLAS
    # may do in a matmul) rounds its index to the other sample (found in review).
    "rotated_tie": Road((RoadSegment(400.0),), 3, 3.5, 30.0, start_pose=(3.3, -7.1, 0.7123)),
}


@pytest.mark.parametrize("name", sorted(ONE_POINT_ROADS))
def test_one_point_to_frenet_matches_the_batch_projection(name):
    """The single-point path of a straight road (Python floats) gives the batch path's bits;
    other roads take the batch path for one point too."""
    road, rng = ONE_POINT_ROADS[name], np.random.default_rng(7)
    lo, hi = road.xy_m.min(axis=0) - 60.0, road.xy_m.max(axis=0) + 60.0
    xy = np.concatenate([rng.uniform(lo, hi, (1500, 2)), road.xy_m[::97] + 0.25,
                         [[264.7695599007905, 212.23779245560326]],
                         [[np.nan, 1.0], [np.inf, 0.0], [-np.inf, 2.0], [1.0, np.nan]]])
    with np.errstate(invalid="ignore"):
        s_all, d_all = road.to_frenet(np.concatenate([xy, xy[:1]]))  # 2+ points: the array path
        one = [road.to_frenet(p[None]) for p in xy]
    s_one = np.array([s[0] for s, _ in one])
    d_one = np.array([d[0] for _, d in one])
    assert all(s.shape == (1,) and d.shape == (1,) for s, d in one)
    assert np.array_equal(s_one, s_all[:-1], equal_nan=True)
    assert np.array_equal(d_one, d_all[:-1], equal_nan=True)


def test_to_frenet_shapes_and_bad_input():
    road = ROADS["s_bend"]
    s, d = road.to_frenet(np.array([3.0, 1.0]))
    assert np.ndim(s) == 0 and np.ndim(d) == 0
    s, d = road.to_frenet(np.zeros((0, 2)))
    assert s.shape == (0,) and d.shape == (0,)
    with np.errstate(invalid="ignore"):
        s, d = road.to_frenet(np.array([[np.nan, 1.0], [50.0, 0.0], [np.inf, 0.0]]))
    assert np.isnan(s[0]) and np.isnan(d[0]) and math.isfinite(s[1]) and not math.isfinite(s[2])
    with pytest.raises(ValueError, match="shape"):
        road.to_frenet(np.zeros((4, 3)))


def reference_idm(v, v0, gap, approach, p):
    dyn = v * p.time_gap_s + v * approach / (2.0 * math.sqrt(p.accel_mps2 * p.decel_mps2))
    s_star = p.min_gap_m + np.maximum(dyn, 0.0)
    acc = p.accel_mps2 * (1.0 - (v / v0) ** p.delta - (s_star / np.maximum(gap, 1e-3)) ** 2)
    return np.maximum(acc, -p.max_decel_mps2)


def test_idm_is_bit_identical_to_the_formula_for_arrays_and_scalars():
    p, rng = IdmParams(1.5, 2.0, 1.5, 2.0, 4.0, 8.0), np.random.default_rng(1)
    v, v0 = rng.uniform(0.0, 35.0, 50), rng.uniform(5.0, 35.0, 50)
    gap = np.where(rng.random(50) < 0.2, np.inf, rng.uniform(-2.0, 120.0, 50))
    approach = rng.uniform(-10.0, 10.0, 50)
    assert np.array_equal(idm_accel(v, v0, gap, approach, p), reference_idm(v, v0, gap, approach, p))
    assert idm_accel(20.0, 25.0, 30.0, 2.0, p) == reference_idm(20.0, 25.0, 30.0, 2.0, p)
    # A scalar speed against many gaps broadcasts like the formula.
    assert np.array_equal(idm_accel(20.0, 25.0, gap, 0.0, p), reference_idm(20.0, 25.0, gap, 0.0, p))


def busy_world(seed):
    cfg = load_scenario("free_road")
    cfg = dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, vehicles_per_km_per_lane=12.0,
                                                               mobil_threshold_mps2=0.05))
    return World(cfg, seed)


def test_world_step_is_deterministic_over_lane_changes():
    w1, w2 = busy_world(4), busy_world(4)
    for k in range(400):
        for w in (w1, w2):
            w.step(0.3 * math.sin(0.01 * k), 0.002, 10_000_000)
    a1, a2 = w1.actors_truth(), w2.actors_truth()
    assert np.array_equal(a1.xy_m, a2.xy_m) and np.array_equal(a1.yaw_rad, a2.yaw_rad)


def test_metrics_broad_phase_counts_exactly_the_sat_contacts():
    vp, road = VehicleParams(), Road((RoadSegment(1000.0),), 3, 3.5, 25.0)
    rng = np.random.default_rng(3)
    expected = 0
    m = MetricsRecorder(road, vp)
    for k in range(200):
        n = 12
        xy = np.column_stack([rng.uniform(92.0, 112.0, n), rng.uniform(-4.0, 4.0, n)])
        yaw, length, width = rng.uniform(-np.pi, np.pi, n), rng.uniform(3.0, 12.0, n), rng.uniform(1.5, 2.6, n)
        ids = np.arange(1, n + 1) + 100 * k  # fresh ids: every contact is a new episode
        pose = np.array([100.0, 0.0, rng.uniform(-0.3, 0.3)])
        centre = pose[:2] + vp.rear_axle_to_center_m * np.array([math.cos(pose[2]), math.sin(pose[2])])
        ego_box = box_corners_2d(centre[None], vp.length_m, vp.width_m, pose[2])
        boxes = box_corners_2d(xy, length, width, yaw)
        expected += int(boxes_overlap(np.broadcast_to(ego_box, (n, 4, 2)), boxes).sum())
        m.update(EgoTruth(k * 10_000_000, pose, centre, 10.0, 0.0, 0.0, 0.0, vp.length_m, vp.width_m, vp.height_m),
                 ActorsTruth(k * 10_000_000, ids, xy, yaw, np.full(n, 5.0), np.zeros(n), length, width,
                             np.full(n, 1.5), np.zeros(n, np.int16), np.zeros((n, 3), np.uint8)))
    assert expected > 0 and m.summary()["collisions"] == expected


@pytest.mark.parametrize("scenario", ["lead_brake", "stopped_vehicle", "cut_in"])
def test_script_override_matches_scripted_accel(scenario):
    """The traffic step's override (script_override_rows on the world's masks) gives
    sim.actors.scripted_accel's bits."""
    from sim.actors import scripted_accel
    from sim.traffic_kernels import script_override_rows

    world, rng = World(load_scenario(scenario), 0), np.random.default_rng(0)
    for k in range(800):  # past every scenario's trigger
        world.step(0.0, 0.0, 10_000_000)
        if k % 50 == 0:
            state, fleet = world._state, world._fleet
            a_idm = rng.uniform(-3.0, 2.0, len(fleet))
            v = state.v_mps.copy()
            v[::3] = 0.0  # standing still: the brake stops at zero, -0.0 from -np.minimum
            expected = scripted_accel(fleet.kind, state.triggered, v, fleet.decel_mps2, a_idm, 0.01)
            got = a_idm.copy()
            script_override_rows(got, v, fleet.decel_mps2, world._braking, world._stopped, 0.01)
            assert got.tobytes() == expected.tobytes()
    assert world._state.triggered.any() or scenario == "stopped_vehicle"


@pytest.mark.parametrize("scenario", ["cut_in", "lead_brake", "stopped_vehicle"])
def test_script_start_check_agrees_with_update_triggers(scenario):
    """World._a_script_starts (Python floats over the waiting scripts) says yes exactly when
    update_triggers starts one, step by step, while the ego closes in, holds back or brakes."""
    from sim.actors import time_to_collision_s, update_triggers

    world = World(load_scenario(scenario), 0)
    starts = 0
    for k in range(900):
        t_s = world.t_ns / 1e9
        state, fleet = world._state, world._fleet
        ego_s, _ = world._ego_frenet()
        gap = state.s_m - 0.5 * fleet.length_m - (ego_s + 0.5 * world.vehicle.length_m)
        ttc = time_to_collision_s(gap, world._ego.v_mps - state.v_mps)
        _, newly = update_triggers(fleet.kind, fleet.trigger_t_s, state.triggered, t_s, fleet.trigger_ttc_s, ttc)
        assert world._a_script_starts(state, t_s, ego_s) == bool(newly.any())
        starts += int(newly.any())
        world.step(-0.4 if 300 < k < 500 else 0.3, 0.0, 10_000_000)
    assert starts >= (0 if scenario == "stopped_vehicle" else 1)
