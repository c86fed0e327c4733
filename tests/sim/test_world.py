import dataclasses

import numpy as np
import pytest

from core.geometry import wrap_angle
from sim.scenario import load_scenario
from sim.world import World

DT_NS = 10_000_000


def busy(name="free_road"):
    cfg = load_scenario(name)
    return dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, vehicles_per_km_per_lane=12.0))


def run(world, seconds, accel=0.0, steer=0.0):
    for _ in range(int(round(seconds * 1e9 / DT_NS))):
        world.step(accel, steer, DT_NS)


def truth_arrays(world):
    a, e = world.actors_truth(), world.ego_truth()
    return [e.pose, e.center_xy_m, a.ids, a.xy_m, a.yaw_rad, a.speed_mps, a.accel_mps2, a.colors_bgr]


def test_same_seed_is_bit_identical_and_other_seed_differs():
    w1, w2, w3 = World(busy(), 7), World(busy(), 7), World(busy(), 8)
    for w in (w1, w2, w3):
        run(w, 3.0, accel=0.5, steer=0.01)
    for x, y in zip(truth_arrays(w1), truth_arrays(w2)):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    a1, a3 = w1.actors_truth(), w3.actors_truth()
    assert len(a1) != len(a3) or not np.array_equal(a1.xy_m, a3.xy_m)


def test_ego_starts_on_its_lane_aligned_with_the_road():
    cfg = load_scenario("curve")
    w = World(cfg, 0)
    e = w.ego_truth()
    xy, heading = w.road.to_cartesian(cfg.ego.s_m, w.road.lane_center_d(cfg.ego.lane))
    np.testing.assert_allclose(e.pose, [xy[0], xy[1], heading], atol=1e-9)
    assert e.speed_mps == cfg.ego.speed_mps and e.t_ns == 0


def test_traffic_is_sane_over_time():
    w = World(busy(), 3)
    n0 = len(w.actors_truth())
    assert n0 >= 15
    run(w, 10.0, accel=0.0)
    a = w.actors_truth()
    assert w.t_ns == 10 * 1_000_000_000 and a.t_ns == w.t_ns
    assert np.isfinite(a.xy_m).all() and (a.speed_mps >= 0.0).all()
    s, d = w.road.to_frenet(a.xy_m)
    assert (np.abs(d) <= w.road.half_width_m).all()
    # No traffic car has driven through another in its lane.
    lane = w.road.lane_of(d)
    for l in np.unique(lane):
        order = np.sort(s[lane == l])
        assert (np.diff(order) > 4.0).all()


def test_traffic_behind_the_ego_reacts_to_it():
    cfg = load_scenario("free_road")
    w = World(dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, mobil_threshold_mps2=5.0,
                                                                  clear_behind_m=0.0)), 0)
    run(w, 12.0, accel=-8.0)  # the ego stops in its lane
    e, a = w.ego_truth(), w.actors_truth()
    s, d = w.road.to_frenet(np.vstack([e.center_xy_m, a.xy_m]))
    same_lane = (np.abs(d[1:] - d[0]) < 1.0) & (s[1:] < s[0])
    assert same_lane.any()
    gaps = s[0] - s[1:][same_lane] - 0.5 * (e.length_m + a.length_m[same_lane])
    assert gaps.min() > 0.0


def test_hard_brake_actor_stops_and_stays():
    w = World(load_scenario("lead_brake"), 0)
    run(w, 4.9, accel=0.0)
    lead = w.actors_truth()
    assert lead.speed_mps[lead.ids == 1][0] == pytest.approx(20.0, abs=0.5)
    run(w, 1.0, accel=-8.0)
    lead = w.actors_truth()
    assert lead.accel_mps2[lead.ids == 1][0] == pytest.approx(-6.0)
    run(w, 4.0, accel=-8.0)
    lead = w.actors_truth()
    assert lead.speed_mps[lead.ids == 1][0] == 0.0


def _time_triggered_cut_in(trigger_t_s=4.0):
    cfg = load_scenario("cut_in")
    actor = dataclasses.replace(cfg.actors[0], trigger_t_s=trigger_t_s, trigger_ttc_s=None)
    return dataclasses.replace(cfg, actors=(actor,))


def _actor_lane_and_yaw(w):
    a = w.actors_truth()
    _, d = w.road.to_frenet(a.xy_m[a.ids == 1])
    return int(w.road.lane_of(d)[0]), a.yaw_rad[a.ids == 1][0]


def test_cut_in_actor_moves_into_the_target_lane():
    cfg = _time_triggered_cut_in()
    w = World(cfg, 0)
    run(w, cfg.actors[0].trigger_t_s - 0.05, accel=-1.0)
    assert _actor_lane_and_yaw(w)[0] == cfg.actors[0].lane
    run(w, 1.2, accel=-1.0)
    _, yaw = _actor_lane_and_yaw(w)
    assert wrap_angle(yaw) < -0.01  # heading right, towards the ego lane
    run(w, 2.0, accel=-1.0)
    assert _actor_lane_and_yaw(w) == (cfg.ego.lane, pytest.approx(0.0, abs=1e-9))


def _ttc_now(w):
    a, e = w.actors_truth(), w.ego_truth()
    i = np.flatnonzero(a.ids == 1)[0]
    gap = (a.xy_m[i, 0] - 0.5 * a.length_m[i]) - (e.center_xy_m[0] + 0.5 * e.length_m)  # straight road along x
    return gap / (e.speed_mps - a.speed_mps[i])


def test_ttc_triggered_cut_in_starts_at_its_time_to_collision():
    cfg = load_scenario("cut_in")
    trigger_ttc = cfg.actors[0].trigger_ttc_s
    assert trigger_ttc is not None
    w = World(cfg, 0)
    ttc_before = None
    for _ in range(1000):  # 10 s at most
        yaw = _actor_lane_and_yaw(w)[1]
        if abs(wrap_angle(yaw)) > 1e-9:
            break
        ttc_before = _ttc_now(w)
        run(w, DT_NS * 1e-9)
    else:
        pytest.fail("the cut-in never started")
    # It started in the step after the ego's time to collision reached the trigger value: one step
    # at most ~4 m/s of closing changes the TTC by well under 0.05 s.
    assert trigger_ttc - 0.05 < ttc_before <= trigger_ttc + 0.05
    assert 3.0 < w.t_ns * 1e-9 < 5.5  # the scenario's "about t = 4 s"


def test_ttc_triggered_cut_in_waits_while_the_ego_is_not_closing():
    w = World(load_scenario("cut_in"), 0)
    run(w, 6.0, accel=-2.0)  # the ego drops back: it never closes in on the actor
    lane, yaw = _actor_lane_and_yaw(w)
    assert lane == 2 and yaw == pytest.approx(0.0, abs=1e-12)


def test_trigger_ttc_only_for_cut_in_actors():
    from sim.scenario import ActorConfig
    with pytest.raises(ValueError, match="trigger_ttc_s"):
        ActorConfig(kind="hard_brake", trigger_ttc_s=3.0)


def test_stopped_actor_never_moves():
    w = World(load_scenario("stopped_vehicle"), 0)
    xy0 = w.actors_truth().xy_m[0].copy()
    run(w, 3.0)
    assert np.array_equal(w.actors_truth().xy_m[0], xy0) and w.actors_truth().speed_mps[0] == 0.0


@pytest.mark.parametrize("accel, steer, dt_ns", [(np.nan, 0.0, DT_NS), (0.0, np.inf, DT_NS), (0.0, 0.0, 0),
                                                 (0.0, 0.0, 0.01)])
def test_step_rejects_bad_input(accel, steer, dt_ns):
    w = World(load_scenario("free_road"), 0)
    with pytest.raises(ValueError):
        w.step(accel, steer, dt_ns)
    assert w.t_ns == 0


def test_rejects_bad_seed():
    with pytest.raises(ValueError):
        World(load_scenario("free_road"), -1)


def test_empty_traffic_gives_empty_truth():
    cfg = load_scenario("free_road")
    w = World(dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, vehicles_per_km_per_lane=0.0)), 0)
    run(w, 0.1)
    a = w.actors_truth()
    assert len(a) == 0 and a.xy_m.shape == (0, 2) and a.colors_bgr.shape == (0, 3)


def test_truth_fields_hold_what_their_names_say():
    """The world builds its truths positionally (a hot path): each field against its source."""
    w = World(busy(), 5)
    run(w, 1.0, accel=0.4, steer=0.02)
    e, a, p = w.ego_truth(), w.actors_truth(), w.vehicle
    assert e.t_ns == w.t_ns and e.pose.tolist() == [w._ego.x_m, w._ego.y_m, w._ego.yaw_rad]
    assert e.center_xy_m.tolist() == list(w._ego_centre())
    assert (e.speed_mps, e.accel_mps2, e.steer_rad) == (w._ego.v_mps, w._ego.a_mps2, w._ego.steer_rad)
    assert (e.length_m, e.width_m, e.height_m) == (p.length_m, p.width_m, p.height_m) and e.yaw_rate_rps != 0.0
    on = np.flatnonzero(w._state.active)
    fleet = w._fleet
    assert a.t_ns == w.t_ns and np.array_equal(a.ids, fleet.ids[on])
    assert np.array_equal(a.accel_mps2, w._state.a_mps2[on]) and (a.speed_mps >= w._state.v_mps[on]).all()
    for got, col in ((a.length_m, fleet.length_m), (a.width_m, fleet.width_m), (a.height_m, fleet.height_m),
                     (a.labels, fleet.labels), (a.colors_bgr, fleet.colors_bgr)):
        assert got.dtype == col.dtype and np.array_equal(got, col[on])
    assert a.xy_m.shape == (len(on), 2) and a.yaw_rad.shape == (len(on),)
