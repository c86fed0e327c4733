import numpy as np
import pytest

from acc_loop import make_tracks, straight_road
from core.config import ConfigError, from_mapping
from planning.lattice import LatticeConfig, LatticeState, _track_rates
from planning.prediction import MODEL_CTRV, MODEL_CV, MODEL_LANE, PredictionParams, predict, prediction_grid
from planning.track_frenet import FrenetTracks, tracks_to_frenet

T = np.arange(51) * 0.1


def _ft(xy, v, yaws=None):
    tracks = make_tracks(0, np.asarray(xy, float), np.asarray(v, float))
    if yaws is not None:
        tracks = type(tracks)(*(getattr(tracks, f) if f != "yaws" else np.asarray(yaws, float)
                                for f in tracks.__slots__))
    ft, _ = tracks_to_frenet(tracks, straight_road(), 0, 0.3)
    return ft


def test_models_and_growing_uncertainty():
    road = straight_road()
    ft = _ft([[50.0, 0.0], [60.0, 3.5], [70.0, -3.5], [80.0, 0.0]],
             [[20.0, 0.0], [20.0, -1.0], [5.0, 4.0], [0.0, 0.0]])
    pred = predict(ft, np.array([0.0, 0.0, 0.2, 0.0]), road, T, PredictionParams())
    assert pred.model.tolist() == [MODEL_LANE, MODEL_LANE, MODEL_CTRV, MODEL_CV]
    assert pred.s_m[0, -1] == pytest.approx(150.0) and np.allclose(pred.d_m[0], 0.0)
    # A lane changer moves over but its lateral velocity decays instead of leaving the road.
    assert 0.0 < pred.d_m[1, -1] < 3.5 - 1.0 and pred.d_m[1, -1] > 3.5 - 2.0 * 1.0
    # CTRV turns left of the CV line with the same speed.
    cv = predict(ft, np.zeros(4), road, T, PredictionParams())
    assert pred.d_m[2, -1] > cv.d_m[2, -1] + 1.0
    assert np.hypot(pred.s_m[2, 10] - 70.0, pred.d_m[2, 10] + 3.5) == pytest.approx(np.hypot(5, 4) * 1.0, rel=0.02)
    assert pred.s_m[3, -1] == pytest.approx(80.0)
    assert np.all(np.diff(pred.sigma_s_m, axis=1) > 0) and np.all(np.diff(pred.sigma_d_m, axis=1) > 0)
    assert pred.sigma_s_m[2, -1] > pred.sigma_s_m[0, -1]  # unstructured models are less certain


def _yaw_rate(ids, yaws, prev_ids, prev_yaws, dt_s):
    """The lattice's yaw-rate memory (_track_rates) for tracks that only have ids and yaws."""
    z = np.zeros(len(ids))
    ft = FrenetTracks(np.asarray(ids, np.int64), z, z, z, z, z, z, z, z, z, z, z, np.asarray(yaws, float))
    state = LatticeState(track_ids=np.asarray(prev_ids, np.int64), track_yaws=np.asarray(prev_yaws, float),
                         track_vs=np.zeros(len(prev_ids)), track_accel=np.zeros(len(prev_ids)))
    return _track_rates(ft, state, dt_s, 0.2)[0]


def test_yaw_rate_from_previous_ids_and_empty():
    assert _yaw_rate([3, 7, 9], [0.1, 3.1, 0.0], [9, 3], [0.0, 0.0], 0.1) == pytest.approx([1.0, 0.0, 0.0])
    # Wrap-around: from +pi - 0.05 to -pi + 0.05 is +0.1 rad.
    assert _yaw_rate([1], [-np.pi + 0.05], [1], [np.pi - 0.05], 0.1) == pytest.approx([1.0])
    empty = _ft(np.zeros((0, 2)), np.zeros((0, 2)))
    pred = predict(empty, np.zeros(0), straight_road(), T, PredictionParams())
    assert pred.s_m.shape == (0, 51)


def test_config_ranges_are_validated():
    cfg = from_mapping(LatticeConfig, {"num_accel_levels": 9, "prediction": {"sigma0_m": 0.5}})
    assert cfg.num_accel_levels == 9 and cfg.prediction.sigma0_m == 0.5
    with pytest.raises(ConfigError, match="prediction.sigma0_m"):
        from_mapping(LatticeConfig, {"prediction": {"sigma0_m": -1.0}})
    with pytest.raises(ConfigError, match="acc.time_gap_s"):
        from_mapping(LatticeConfig, {"acc": {"time_gap_s": 99.0}})


def test_lattice_grid_config_cross_checks():
    with pytest.raises(ConfigError, match="horizons_s"):
        from_mapping(LatticeConfig, {"horizons_s": [2.0, 9.0]})
    with pytest.raises(ConfigError, match="lateral_offsets_m"):
        from_mapping(LatticeConfig, {"lateral_offsets_m": []})


def test_all_lane_fast_path_equals_general_path():
    """Every object on the lane model takes a shortcut; appending a stopped car (CV/static model)
    forces the general path, whose rows for the lane objects must be the same to the bit (every
    operation is per object), braking followers included."""
    road = straight_road()
    xy = [[50.0, 0.0], [60.0, 3.5], [70.0, -3.5], [90.0, 0.3]]
    v = [[20.0, 0.0], [22.0, -1.0], [25.0, 0.4], [18.0, 0.0]]
    accel = np.array([0.0, -3.0, 1.0, -6.0])
    yaw_rate = np.array([0.0, 0.05, -0.1, 0.0])
    fast = predict(_ft(xy, v), yaw_rate, road, T, PredictionParams(), accel)
    general = predict(_ft(xy + [[120.0, 0.0]], v + [[0.0, 0.0]]), np.append(yaw_rate, 0.0), road, T,
                      PredictionParams(), np.append(accel, 0.0))
    assert general.model[-1] != MODEL_LANE and (fast.model == MODEL_LANE).all()
    for f in ("s_m", "d_m", "sigma_s_m", "sigma_d_m", "length_m", "width_m", "model"):
        a, b = getattr(fast, f), getattr(general, f)[:4]
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f


def test_precomputed_grid_changes_nothing():
    """The lattice passes its tables' prediction grid; predict builds the same one otherwise."""
    road, p = straight_road(), PredictionParams()
    for xy, v in (([[50.0, 0.0], [60.0, 3.5]], [[20.0, 0.0], [22.0, -1.0]]),
                  ([[50.0, 0.0], [70.0, -3.5], [80.0, 0.0]], [[20.0, 0.0], [5.0, 4.0], [0.0, 0.0]])):
        ft = _ft(xy, v)
        rate = np.full(len(ft), 0.1)
        a, b = predict(ft, rate, road, T, p), predict(ft, rate, road, T, p, None, prediction_grid(T, p))
        for f in ("s_m", "d_m", "sigma_s_m", "sigma_d_m", "model"):
            assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f


def test_float32_time_grid_keeps_float64_sigmas():
    """A float32 time grid: the all-lane shortcut's sigma rows stay float64 and equal the general
    path's rows for the same objects, as they were before the shortcut (found in review)."""
    road = straight_road()
    xy, v = [[50.0, 0.0], [60.0, 3.5]], [[20.0, 0.0], [22.0, -1.0]]
    t32 = T.astype(np.float32)
    fast = predict(_ft(xy, v), np.zeros(2), road, t32, PredictionParams())
    general = predict(_ft(xy + [[120.0, 0.0]], v + [[0.0, 0.0]]), np.zeros(3), road, t32, PredictionParams())
    assert (fast.model == MODEL_LANE).all() and general.model[-1] != MODEL_LANE
    for f in ("sigma_s_m", "sigma_d_m"):
        a, b = getattr(fast, f), getattr(general, f)[:2]
        assert a.dtype == np.float64 and a.tobytes() == b.tobytes(), f


@pytest.mark.parametrize("k", [0.02, -0.02])
@pytest.mark.parametrize("d_lane", [-3.5, 3.5])
def test_lane_prediction_on_a_curve_follows_the_car_along_its_lane(k, d_lane):
    """A car driving its lane of a circular road at 20 m/s: the lane model's s after t is where the
    car is (its arc-length position, from its true map position), so s advances at the reference
    line's rate v / (1 - k d), not at v. The physical speed along the road stays v."""
    from core.road import Road, RoadSegment
    road = Road((RoadSegment(600.0, k),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
    s0, v = 100.0, 20.0
    xy0, heading0 = road.to_cartesian(np.array([s0]), np.array([d_lane]))
    vel = v * np.array([[np.cos(heading0[0]), np.sin(heading0[0])]])
    ft, _ = tracks_to_frenet(make_tracks(0, xy0, vel), road, 0, 0.3)
    assert ft.vs_mps[0] == pytest.approx(v, abs=1e-9)
    t_s = np.linspace(0.0, 5.0, 26)
    pred = predict(ft, np.zeros(1), road, t_s, PredictionParams())
    assert pred.model[0] == MODEL_LANE
    # Truth: the car on its lane's circle, radius 1/k - d, covers v t of it.
    true_s = s0 + v * t_s / (1.0 - k * d_lane)
    true_xy, _ = road.to_cartesian(true_s, np.full_like(true_s, d_lane))
    np.testing.assert_allclose(road.to_cartesian(pred.s_m[0], pred.d_m[0])[0], true_xy, atol=1e-6)
    # 1 - k d = 1 -+ 0.07: were s to advance at v, it would be 6.5-7.5 m off after 5 s.
    assert abs((pred.s_m[0, -1] - s0) - v * 5.0) > 6.5


def _reference_map_frame_rollout(model, free, yaw_rate, vx, vy, vs, vd, x, y, t_s):
    """predict's numpy form of the free tracks' map-frame roll-out (before _map_frame_rollout)."""
    t = t_s[None, :]
    w = np.where(model == MODEL_CTRV, yaw_rate, 0.0)[free, None]
    heading0 = np.arctan2(vy[free], vx[free])[:, None]
    v = np.hypot(vs, vd)[free, None]
    turning = np.abs(w) > 1e-6
    w_safe = np.where(turning, w, 1.0)
    dx = np.where(turning, v / w_safe * (np.sin(heading0 + w * t) - np.sin(heading0)), v * np.cos(heading0) * t)
    dy = np.where(turning, v / w_safe * (np.cos(heading0) - np.cos(heading0 + w * t)), v * np.sin(heading0) * t)
    return np.stack([x[free, None] + dx, y[free, None] + dy], axis=-1).reshape(-1, 2)


def test_map_frame_rollout_kernel_matches_the_numpy_form():
    """The compiled free-track roll-out against the numpy form, to the bit: CV and CTRV tracks,
    yaw rates around the 1e-6 threshold, signed zero velocities, mixed free flags."""
    from planning.prediction import _map_frame_rollout
    rng = np.random.default_rng(23)
    t_s = np.arange(51) * 0.1
    for _ in range(200):
        n = int(rng.integers(0, 12))
        model = rng.choice(np.array([MODEL_CV, MODEL_CTRV, MODEL_LANE], np.int8), n)
        free = rng.random(n) < 0.7
        yaw_rate = rng.normal(0.0, 0.3, n) * rng.choice([1.0, 1e-6, 1e-7, 0.0], n)
        vx, vy = rng.normal(10.0, 8.0, n), rng.normal(0.0, 3.0, n)
        vx[rng.random(n) < 0.1], vy[rng.random(n) < 0.2] = -0.0, 0.0
        vs, vd = rng.normal(10.0, 8.0, n), rng.normal(0.0, 1.0, n)
        x, y = rng.uniform(-50.0, 500.0, n), rng.uniform(-10.0, 10.0, n)
        got = _map_frame_rollout(model, free, yaw_rate, vx, vy, vs, vd, x, y, t_s)
        ref = _reference_map_frame_rollout(model, free, yaw_rate, vx, vy, vs, vd, x, y, t_s)
        assert got.dtype == ref.dtype and got.shape == ref.shape and got.tobytes() == ref.tobytes()


@pytest.mark.parametrize("start_pose", [(0.0, 0.0, 0.0), (4.0, -3.0, 0.35)])
def test_tracks_projected_in_the_selection_kernel_match_road_to_frenet(start_pose):
    """On a straight road _kept_tracks projects the propagated tracks itself (line_point_frenet):
    the same bits as Road.to_frenet of their positions, points off the road's ends included."""
    from core.road import Road, RoadSegment
    road = Road((RoadSegment(600.0),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0, start_pose=start_pose)
    rng = np.random.default_rng(31)
    for _ in range(50):
        n = int(rng.integers(1, 20))
        s, d = rng.uniform(-30.0, 630.0, n), rng.uniform(-8.0, 8.0, n)
        xy, _ = road.to_cartesian(s, d)
        tracks = make_tracks(1_000_000_000, xy, rng.normal(0.0, 10.0, (n, 2)))
        ft, n_bad = tracks_to_frenet(tracks, road, 1_050_000_000, 0.5)
        assert n_bad == 0 and len(ft) == n
        s_ref, d_ref = road.to_frenet(np.stack([ft.x_m, ft.y_m], axis=1))
        assert ft.s_m.tobytes() == s_ref.tobytes() and ft.d_m.tobytes() == d_ref.tobytes()
