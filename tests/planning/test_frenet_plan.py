"""frenet_to_plan's straight-road path must give exactly what the general (arc-aware) path gives."""
from __future__ import annotations

import numpy as np
import pytest

from core.road import Road, RoadSegment
from planning.frenet_plan import _straight_yaw_curvature, frenet_to_plan, numpy_frenet_to_plan, yaw_curvature


def test_straight_road_path_is_bit_identical_to_the_general_path():
    road = Road((RoadSegment(2000.0),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
    assert road.is_straight
    rng = np.random.default_rng(3)
    t_s = np.arange(51) * 0.1
    for _ in range(50):
        # Arc lengths beyond both road ends too: both paths clamp them the same way.
        s = np.sort(rng.uniform(-10.0, 2100.0, 51))
        d, d_s, d_ss = rng.uniform(-5, 5, 51), rng.uniform(-0.3, 0.3, 51), rng.uniform(-0.05, 0.05, 51)
        fast = frenet_to_plan(road, 0, t_s, s, d, d_s, d_ss, s, d, False, "cruise")
        road.is_straight = False  # a plain attribute: force the general branch on the same geometry
        try:
            general = numpy_frenet_to_plan(road, 0, t_s, s, d, d_s, d_ss, s, d, False, "cruise")
        finally:
            road.is_straight = True
        for f in ("xy_m", "yaw_rad", "curvature_1pm"):
            np.testing.assert_array_equal(getattr(fast, f), getattr(general, f), err_msg=f)
    assert np.all(fast.curvature_1pm != 0.0)  # the lateral terms were exercised, not only k == 0


def test_straight_fast_path_equals_general_formula():
    """The straight-road shortcut against the general formula at k == 0.0, to the bit: random
    offsets and slopes (the planner clips d' to [-1, 1], wider here), signed zeros, huge d''."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = 51
        d = rng.normal(0.0, 3.0, n)
        dd = rng.normal(0.0, 2.0, n) * rng.choice([1.0, 1e-8, 1e8], n)
        d2 = rng.normal(0.0, 0.5, n) * rng.choice([1.0, 1e-300, 1e300], n)
        zeros = rng.random(n) < 0.2
        dd[zeros], d2[rng.random(n) < 0.2] = rng.choice([0.0, -0.0]), -0.0
        d2[zeros] = 0.0
        fast = _straight_yaw_curvature(dd, d2)
        general = yaw_curvature(0.0, d, dd, d2)
        assert all(f.tobytes() == g.tobytes() for f, g in zip(fast, general))


def test_float32_profiles_match_the_general_path():
    """float32 profiles take the straight shortcut with the general branch's values and its
    float64 dtype (found in review: the shortcut returned float32)."""
    road = Road((RoadSegment(2000.0),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
    t_s = np.arange(6) * 0.1
    s = 100.0 + 2.0 * np.arange(6)
    d_s = np.linspace(-0.2, 0.3, 6).astype(np.float32)
    d_ss = np.linspace(0.01, -0.02, 6).astype(np.float32)
    d = np.full(6, 1.75, np.float32)
    fast = frenet_to_plan(road, 0, t_s, s, d, d_s, d_ss, s, s, False, "cruise")
    road.is_straight = False
    try:
        general = numpy_frenet_to_plan(road, 0, t_s, s, np.asarray(d, np.float64), np.asarray(d_s, np.float64),
                                           np.asarray(d_ss, np.float64), s, s, False, "cruise")
    finally:
        road.is_straight = True
    assert fast.xy_m.shape == (6, 2)
    for f in ("xy_m", "yaw_rad", "curvature_1pm"):
        assert getattr(fast, f).dtype == np.float64, f
        np.testing.assert_array_equal(getattr(fast, f), getattr(general, f), err_msg=f)


def _numeric_rates(plan, t):
    vel = np.gradient(plan.xy_m, t, axis=0)
    acc = np.gradient(vel, t, axis=0)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    return speed, (vel * acc).sum(axis=1) / speed


@pytest.mark.parametrize("k", [0.02, -0.02])
@pytest.mark.parametrize("d_lane", [-3.5, 3.5])
def test_plan_speed_and_accel_in_a_curved_lane_are_those_of_its_positions(k, d_lane):
    """On a circle, a lane at offset d driven with s(t) = 100 + 15 t + 0.5 t^2: the plan's speed
    and acceleration are those of its own map positions (finely sampled, differentiated
    numerically), 1 - k d times the reference line's s' and s''."""
    road = Road((RoadSegment(600.0, k),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
    t = np.arange(0, 4001) * 1e-3
    s, s_dot, s_ddot = 100.0 + 15.0 * t + 0.5 * t * t, 15.0 + t, np.ones_like(t)
    d, z = np.full_like(t, d_lane), np.zeros_like(t)
    plan = frenet_to_plan(road, 0, t, s, d, z, z, s_dot, s_ddot, False, "cruise")
    speed, tangential = _numeric_rates(plan, t)
    inner = slice(2, -2)  # one-sided differences at the ends
    np.testing.assert_allclose(plan.speed_mps[inner], speed[inner], rtol=0.0, atol=1e-5)
    np.testing.assert_allclose(plan.accel_mps2[inner], tangential[inner], rtol=0.0, atol=1e-4)
    assert np.abs(plan.speed_mps - s_dot).max() > 0.9  # 1 - k d = 1 -+ 0.07


@pytest.mark.parametrize("k", [0.0, 0.02, -0.02])
def test_plan_speed_of_a_weaving_path_is_its_speed_along_the_lane(k):
    """A path weaving across the lanes, d(s) = 1 + 2 sin(0.05 (s - 100)): the plan's speed is the
    positions' speed times cos(delta), their speed along the lane (the lateral part is left out:
    see frenet_to_plan); on a straight road the reference line's rates pass through, bit for bit."""
    road = Road((RoadSegment(600.0, k),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
    t = np.arange(0, 4001) * 1e-3
    s, s_dot, s_ddot = 100.0 + 15.0 * t + 0.5 * t * t, 15.0 + t, np.ones_like(t)
    w, phase = 0.05, 0.05 * (s - 100.0)
    d, d_s, d_ss = 1.0 + 2.0 * np.sin(phase), 2.0 * w * np.cos(phase), -2.0 * w * w * np.sin(phase)
    plan = frenet_to_plan(road, 0, t, s, d, d_s, d_ss, s_dot, s_ddot, False, "cruise")
    speed, _ = _numeric_rates(plan, t)
    one_kd = 1.0 - k * d
    cos_delta = one_kd / np.hypot(one_kd, d_s)
    inner = slice(2, -2)
    np.testing.assert_allclose(plan.speed_mps[inner], (speed * cos_delta)[inner], rtol=0.0, atol=1e-5)
    if k == 0.0:
        np.testing.assert_array_equal(plan.speed_mps, s_dot)
        np.testing.assert_array_equal(plan.accel_mps2, s_ddot)


@pytest.mark.parametrize("start_pose", [(0.0, 0.0, 0.0), (3.0, -2.0, 0.4)])
def test_straight_plan_kernel_matches_the_composed_kernels(start_pose):
    """frenet_to_plan's one-call straight-road geometry (_straight_plan_geometry) against the calls
    it fused, to the bit: Road.to_cartesian, _straight_yaw_curvature and heading + delta; views of
    lattice rows, signed zeros, huge d'' and arc lengths off both ends of the road."""
    road = Road((RoadSegment(800.0),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0, start_pose=start_pose)
    rng = np.random.default_rng(11)
    t_s = np.arange(51) * 0.1
    for _ in range(100):
        rows = rng.normal(0.0, 2.0, (4, 2, 51))  # rows of a larger family, as the lattice passes them
        s = rng.uniform(-20.0, 820.0, 51)
        d, dd, d2 = rows[0, 1], rows[1, 0] * rng.choice([1.0, 1e-8], 51), rows[2, 1] * rng.choice([1.0, 1e300], 51)
        d[rng.random(51) < 0.2], dd[rng.random(51) < 0.2], d2[rng.random(51) < 0.2] = -0.0, -0.0, 0.0
        plan = frenet_to_plan(road, 7, t_s, s, d, dd, d2, s, d, False, "cruise")
        xy, heading = road.to_cartesian(s, d)
        delta, curvature = _straight_yaw_curvature(dd, d2)
        for got, ref in ((plan.xy_m, xy), (plan.yaw_rad, heading + delta), (plan.curvature_1pm, curvature)):
            assert got.dtype == ref.dtype and got.shape == ref.shape and got.tobytes() == ref.tobytes()
            assert got.flags.c_contiguous


@pytest.mark.parametrize("start_pose", [(0.0, 0.0, 0.0), (3.0, -2.0, 0.4)])
def test_curved_plan_kernel_matches_the_numpy_form(start_pose):
    """frenet_to_plan's one-call curved-road branch (_curved_plan_geometry) against the numpy form,
    to the bit: arcs both ways and a straight piece, rows of a larger family, arc lengths off both
    ends and at 0.0 and -0.0, signed zeros, offsets past the centre of curvature (the 1 - k d
    floor), huge d'', NaN and inf."""
    segments = (RoadSegment(150.0, 0.02), RoadSegment(100.0), RoadSegment(200.0, -0.05), RoadSegment(57.3, 0.004))
    road = Road(segments, num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0, start_pose=start_pose)
    assert not road.is_straight
    rng = np.random.default_rng(12)
    t_s = np.arange(51) * 0.1
    for trial in range(300):
        rows = rng.normal(0.0, 3.0, (6, 2, 51))  # rows of a larger family, as the lattice passes them
        s = rng.uniform(-20.0, road.length_m + 20.0, 51)
        s[rng.random(51) < 0.05] = rng.choice([0.0, -0.0, road.length_m])
        d, dd = rows[0, 1] * rng.choice([1.0, 10.0], 51), rows[1, 0] * rng.choice([1.0, 1e-8], 51)
        d2 = rows[2, 1] * rng.choice([1.0, 1e300], 51)
        v, a = rows[3, 0] + 15.0, rows[4, 1]
        d[rng.random(51) < 0.1], dd[rng.random(51) < 0.1], d2[rng.random(51) < 0.1] = -0.0, -0.0, 0.0
        if trial % 10 == 0:
            for z in (s, d, dd, d2, v, a):
                z[rng.integers(51)] = rng.choice([np.nan, np.inf, -np.inf])
        with np.errstate(all="ignore"):
            ref = numpy_frenet_to_plan(road, 7, t_s, s, d, dd, d2, v, a, False, "cruise")
        plan = frenet_to_plan(road, 7, t_s, s, d, dd, d2, v, a, False, "cruise")
        for f in ("xy_m", "yaw_rad", "curvature_1pm", "speed_mps", "accel_mps2"):
            got, want = getattr(plan, f), getattr(ref, f)
            assert got.dtype == want.dtype and got.shape == want.shape, (trial, f)
            # Bits where finite or infinite; NaN where NaN (its sign and payload are the operand
            # order's, which LLVM may commute: the precedent of the other kernels' tests).
            nan = np.isnan(want)
            assert np.array_equal(np.isnan(got), nan), (trial, f)
            assert got[~nan].tobytes() == want[~nan].tobytes(), (trial, f)
