"""Every built-in scenario is passable by a plain ACC driver: 1.5 s time gap, comfortable braking
around 3 m/s^2, emergency braking up to 8 m/s^2, pure-pursuit lane keeping. The driver reads ground
truth (it checks the scenarios, not the stack), with 0.1 s of reaction delay."""
import math

import numpy as np
import pytest

from sim.metrics import MetricsRecorder
from sim.scenario import load_scenario
from sim.world import World

DT_NS = 50_000_000  # 20 Hz keeps the file fast; the ego arc and traffic are exact per step
DELAY_STEPS = 2


def acc_driver(world, lane):
    e, a = world.ego_truth(), world.actors_truth()
    road, vp = world.road, world.vehicle
    s, d = road.to_frenet(np.vstack([e.center_xy_m, a.xy_m]))
    ahead = (s[1:] > s[0]) & (np.abs(d[1:] - road.lane_center_d(lane)) < 0.5 * (a.width_m + e.width_m))
    v, v0 = e.speed_mps, road.speed_limit_mps
    accel = 2.0 * (1.0 - (v / v0) ** 4)
    if ahead.any():
        gaps = s[1:][ahead] - s[0] - 0.5 * (a.length_m[ahead] + e.length_m)
        i = int(np.argmin(gaps))
        gap, v_lead = max(float(gaps[i]), 0.1), float(a.speed_mps[ahead][i])
        s_star = 4.0 + max(0.0, v * 1.5 + v * (v - v_lead) / (2.0 * math.sqrt(2.0 * 3.0)))
        accel -= 2.0 * (s_star / gap) ** 2
    # Pure pursuit on the lane centre, the rear axle as the pivot.
    s_axle, _ = road.to_frenet(e.pose[None, :2])
    look = max(8.0, 0.8 * v)
    target, _ = road.to_cartesian(s_axle[0] + look, road.lane_center_d(lane))
    dx, dy = target[0] - e.pose[0], target[1] - e.pose[1]
    y_local = -math.sin(e.pose[2]) * dx + math.cos(e.pose[2]) * dy
    steer = math.atan2(2.0 * vp.wheelbase_m * y_local, dx * dx + dy * dy)
    return max(accel, -8.0), steer


@pytest.mark.parametrize("name", ["free_road", "lead_brake", "cut_in", "stopped_vehicle", "curve"])
def test_scenario_is_passable(name):
    cfg = load_scenario(name)
    world = World(cfg, seed=11)
    metrics = MetricsRecorder(world.road, world.vehicle)
    pending = [(0.0, 0.0)] * DELAY_STEPS
    while world.t_ns < world.end_ns:
        pending.append(acc_driver(world, cfg.ego.lane))
        world.step(*pending.pop(0), DT_NS)
        metrics.update(world.ego_truth(), world.actors_truth())
    summary = metrics.summary()
    assert summary["collisions"] == 0, summary
    assert summary["lane_center_rmse_m"] < 0.3, summary
    assert summary["progress_m"] > 100.0, summary
    if name in ("lead_brake", "stopped_vehicle"):
        assert world.ego_truth().speed_mps < 0.5 and summary["min_distance_m"] > 1.0, summary
    if name == "curve":
        assert summary["max_abs_lat_accel_mps2"] > 1.0, summary  # the curve was actually driven
    print(name, summary)
