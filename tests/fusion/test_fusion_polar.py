import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import ExtendedKalmanFilter

from core.geometry import wrap_angle
from core.messages import Detections2D, Detections3D, EgoState
from fusion.sensor_models import (CameraModel, RadarModel, camera_measurements, polar_predict,
                                  radar_measurements)
from fusion.tracker import tracker_step
from fusion.tracker_polar import tracker_step_camera, tracker_step_radar
from fusion.tracker_state import SourceModel, TrackerConfig, TrackerState
from fusion_reference import detections

STEP_NS = 100_000_000
CFG = TrackerConfig(sources={"lidar": SourceModel(0.3, 0.4, 3.1416, 500.0),
                             "radar": SourceModel(0.5, 0.3, 3.1416, 500.0),
                             "camera": SourceModel(1.0, 1.0, 3.1416, 500.0)},
                    motion_model="cv")  # the CV EKF, compared with filterpy's per track
# The synthetic measurements here are of point targets (no near face), as the filterpy reference
# models them: the near-face offset is off; test_fusion_near_face.py covers it.
RADAR = RadarModel(mount_x_m=3.7, mount_y_m=0.2, mount_yaw_rad=0.0, near_face_fraction=0.0,
                   extent_bearing_fraction=0.0)
CAMERA = CameraModel(fx_px=800.0, cx_px=640.0, mount_x_m=1.5, mount_y_m=0.0, mount_yaw_rad=0.0,
                     near_face_fraction=0.0)
POSE = np.array([2.0, -1.0, 0.1])
POSE_COV = np.diag([0.04, 0.04, 1e-4])


def _ego(t_ns):
    cov = np.zeros((5, 5))
    cov[:3, :3] = POSE_COV
    return EgoState(t_ns, POSE.copy(), 0.0, 0.0, 0.0, cov)


def _to_vehicle(xy_map):
    c, s = np.cos(POSE[2]), np.sin(POSE[2])
    d = xy_map - POSE[:2]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)


def _truth(n, rng):
    i = np.arange(n)
    pos = np.stack([20.0 + (i % 4) * 25.0, (i // 4) * 25.0 - 30.0], axis=1)
    return pos, rng.uniform(-3, 3, (n, 2))


def _radar_frame(t, xy_map, v_map, rng):
    xy_v = _to_vehicle(xy_map) + rng.normal(0, 0.3, xy_map.shape)
    c, s = np.cos(POSE[2]), np.sin(POSE[2])
    v_v = np.stack([c * v_map[:, 0] + s * v_map[:, 1], -s * v_map[:, 0] + c * v_map[:, 1]], axis=1)
    los = xy_v - [RADAR.mount_x_m, RADAR.mount_y_m]
    los /= np.linalg.norm(los, axis=1, keepdims=True)
    radial = (np.einsum("ij,ij->i", v_v, los) + rng.normal(0, 0.2, len(los)))[:, None] * los
    d = detections(t, xy_v, source="radar", vel=radial, vel_valid=np.zeros(len(xy_v), bool))
    return d


def _camera_frame(t, xy_map, rng):
    xy_v = _to_vehicle(xy_map) - [CAMERA.mount_x_m, CAMERA.mount_y_m]
    u = CAMERA.cx_px - CAMERA.fx_px * xy_v[:, 1] / xy_v[:, 0] + rng.normal(0, 2.0, len(xy_v))
    rng_m = np.hypot(xy_v[:, 0], xy_v[:, 1]) + rng.normal(0, 0.8, len(xy_v))
    boxes = np.stack([u - 20, np.full_like(u, 300), u + 20, np.full_like(u, 360)], axis=1)
    m = len(u)
    return Detections2D(t, "camera", boxes.astype(np.float32), np.zeros(m, np.int16),
                        np.full(m, 0.9, np.float32), rng_m.astype(np.float32),
                        np.full(m, 0.8, np.float32))


def _born_state(xy_map, t):
    state, _ = tracker_step(TrackerState.empty(), detections(t, _to_vehicle(xy_map)), _ego(t), t, CFG)
    return state


@pytest.mark.parametrize("sensor", ["radar", "camera"])
def test_polar_ekf_equals_filterpy_extended_kalman_filter(sensor):
    rng = np.random.default_rng(21)
    n = 8
    pos, vel = _truth(n, rng)
    state = _born_state(pos, 0)
    refs = []
    for i in range(n):
        kf = ExtendedKalmanFilter(dim_x=4, dim_z=3 if sensor == "radar" else 2)
        kf.x, kf.P = state.x[i].copy(), state.p[i].copy()
        refs.append(kf)
    for k in range(1, 12):
        t = k * STEP_NS
        truth = pos + vel * t * 1e-9
        if sensor == "radar":
            d = _radar_frame(t, truth, vel, rng)
            pm = radar_measurements(d.boxes, d.velocities_mps, RADAR)
            state, _ = tracker_step_radar(state, d, _ego(t), t, CFG, RADAR)
        else:
            d = _camera_frame(t, truth, rng)
            pm = camera_measurements(d.boxes_px, d.range_m, d.range_sigma_m, CAMERA)
            state, _ = tracker_step_camera(state, d, _ego(t), t, CFG, CAMERA)
        dt = 0.1
        for i, kf in enumerate(refs):
            kf.F = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
            kf.Q = Q_continuous_white_noise(2, dt, CFG.accel_psd_m2ps3, block_size=2, order_by_dim=False)
            kf.predict()
            with_rate = sensor == "radar"
            h, jx, je = polar_predict(kf.x[None], POSE, pm.mount_xy_m, with_rate)
            r_eff = pm.r[i] + je[0] @ POSE_COV @ je[0].T

            def residual(a, b):
                y = a - b
                y[1] = wrap_angle(y[1])
                return y

            kf.update(pm.z[i], lambda x: polar_predict(x[None], POSE, pm.mount_xy_m, with_rate)[1][0],
                      lambda x: polar_predict(x[None], POSE, pm.mount_xy_m, with_rate)[0][0],
                      R=r_eff, residual=residual)
    assert state.hits.tolist() == [12] * n
    for i, kf in enumerate(refs):
        np.testing.assert_allclose(state.x[i], kf.x, rtol=0, atol=1e-9)
        np.testing.assert_allclose(state.p[i], kf.P, rtol=0, atol=1e-9)


def test_polar_jacobians_match_finite_differences():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(5, 60, (5, 2)), rng.normal(0, 3, (5, 2))], axis=1)
    mount = np.array([3.7, 0.2])
    h0, jx, je = polar_predict(x, POSE, mount, True)
    eps = 1e-6
    for k in range(4):
        dx = np.zeros(4)
        dx[k] = eps
        hp = polar_predict(x + dx, POSE, mount, True)[0]
        np.testing.assert_allclose((hp - h0) / eps, jx[:, :, k], atol=1e-5)
    for k in range(3):
        dp = np.zeros(3)
        dp[k] = eps
        hp = polar_predict(x, POSE + dp, mount, True)[0]
        np.testing.assert_allclose((hp - h0) / eps, je[:, :, k], atol=1e-5)


def test_radar_only_tracks_converge_and_measure_speed_along_the_line_of_sight():
    rng = np.random.default_rng(4)
    pos = np.array([[40.0, 2.0], [70.0, -6.0]])
    vel = np.array([[-8.0, 0.0], [5.0, 0.5]])
    state = TrackerState.empty()
    for k in range(40):
        t = k * STEP_NS
        state, out = tracker_step_radar(state, _radar_frame(t, pos + vel * t * 1e-9, vel, rng),
                                        _ego(t), t, CFG, RADAR)
    assert len(out) == 2
    truth = pos + vel * 39 * STEP_NS * 1e-9
    np.testing.assert_allclose(out.states[:, :2], truth, atol=1.0)
    np.testing.assert_allclose(out.states[:, 2], vel[:, 0], atol=0.7)  # mostly radial: observable


def test_camera_nan_and_bad_range_rows_are_rejected_and_counted():
    rng = np.random.default_rng(5)
    pos = np.array([[30.0, 1.0]])
    state = _born_state(pos, 0)
    d = _camera_frame(STEP_NS, pos, rng)
    bad = Detections2D(d.t_ns, "camera", np.concatenate([d.boxes_px, [[np.nan, 0, 1, 1]]]).astype(np.float32),
                       np.zeros(2, np.int16), np.full(2, 0.9, np.float32),
                       np.array([d.range_m[0], 10.0], np.float32), np.array([0.8, 0.8], np.float32))
    state, _ = tracker_step_camera(state, bad, _ego(STEP_NS), STEP_NS, CFG, CAMERA)
    assert state.counters.rejected_nonfinite == 1 and state.hits.tolist() == [2]
    assert np.isfinite(state.x).all() and np.isfinite(state.p).all()
    neg = Detections2D(2 * STEP_NS, "camera", d.boxes_px, d.labels, d.scores,
                       np.array([-5.0], np.float32), d.range_sigma_m)
    state, _ = tracker_step_camera(state, neg, _ego(2 * STEP_NS), 2 * STEP_NS, CFG, CAMERA)
    assert state.counters.rejected_nonfinite == 2


def test_camera_wrong_shape_raises():
    d = _camera_frame(0, np.array([[30.0, 1.0]]), np.random.default_rng(0))
    bad = Detections2D(0, "camera", d.boxes_px[:, :3], d.labels, d.scores, d.range_m, d.range_sigma_m)
    with pytest.raises(ValueError, match="boxes_px"):
        tracker_step_camera(TrackerState.empty(), bad, _ego(0), 0, CFG, CAMERA)


def test_radar_bearing_noise_grows_with_the_angular_width_of_a_close_object():
    # A car 6 m ahead of the radar and 2.5 m to the side: its cluster centroid sits on the near
    # corner. With the extent term the update moves the track far less towards that corner than
    # with the bare 0.02 rad azimuth noise; far away (80 m) the term is negligible.
    from dataclasses import replace
    from fusion.sensor_models import extent_bearing_var
    assert extent_bearing_var(np.array([80.0]), np.array([0.95]), 0.3)[0] < 1e-4
    assert extent_bearing_var(np.array([6.0]), np.array([2.25]), 0.3)[0] > 0.04

    def lateral_after_update(model):
        ego = EgoState(0, np.zeros(3), 0.0, 0.0, 0.0, np.eye(5) * 1e-8)
        cfg = TrackerConfig()
        state = TrackerState.empty()
        box = np.array([[3.7 + 6.0, -2.5, 0.5, 4.5, 1.9, 1.5, 0.0]], np.float32)
        lidar = Detections3D(0, "lidar", box, np.zeros((1, 2), np.float32), np.zeros(1, bool),
                             np.zeros(1, np.int16), np.ones(1, np.float32))
        state, _ = tracker_step(state, lidar, ego, 0, cfg)
        corner = np.array([[3.7 + 4.5, -1.6, 0.5, 1.0, 1.0, 1.5, 0.0]], np.float32)
        radar = Detections3D(1_000_000, "radar", corner, np.zeros((1, 2), np.float32), np.ones(1, bool),
                             np.zeros(1, np.int16), np.ones(1, np.float32))
        state, _ = tracker_step_radar(state, radar, ego, 1_000_000, cfg, model)
        return float(state.x[0, 1])

    bare = lateral_after_update(replace(RADAR, extent_bearing_fraction=0.0, near_face_fraction=0.6))
    wide = lateral_after_update(replace(RADAR, extent_bearing_fraction=0.3, near_face_fraction=0.6))
    assert abs(wide + 2.5) < 0.5 * abs(bare + 2.5)


def test_camera_boxes_cut_off_by_the_border_or_too_near_are_left_out_and_counted():
    from dataclasses import replace as _replace
    cam = _replace(CAMERA, width_px=1280.0, height_px=720.0)  # principal point 640: a centred 1280-px image
    boxes = np.array([[600.0, 300.0, 680.0, 360.0],  # well inside: kept
                      [1200.0, 300.0, 1280.0, 360.0],  # touches the right border
                      [0.0, 300.0, 60.0, 360.0],  # touches the left border
                      [600.0, 500.0, 680.0, 720.0],  # touches the bottom border
                      [600.0, 300.0, 680.0, 360.0]])  # inside, but nearer than min_range_m
    rng_m = np.array([30.0, 30.0, 30.0, 30.0, 6.0])
    pm = camera_measurements(boxes, rng_m, np.full(5, 1.0), cam)
    assert pm.keep.tolist() == [True, False, False, False, False]
    assert pm.unreliable.tolist() == [False, True, True, True, True]
    # A non-finite row is neither kept nor "unreliable": it is counted as non-finite elsewhere.
    pm = camera_measurements(boxes[:1], np.array([np.nan]), np.ones(1), cam)
    assert pm.keep.tolist() == [False] and pm.unreliable.tolist() == [False]


def test_tracker_counts_unreliable_camera_boxes_and_never_uses_them():
    from dataclasses import replace as _replace
    cam = _replace(CAMERA, width_px=1280.0, height_px=720.0)
    t = 1_000_000_000
    boxes = np.array([[1230.0, 300.0, 1280.0, 360.0], [600.0, 300.0, 680.0, 360.0]], np.float32)
    d = Detections2D(t, "camera", boxes, np.zeros(2, np.int16), np.full(2, 0.9, np.float32),
                     np.array([25.0, 5.0], np.float32), np.full(2, 0.5, np.float32))
    state, _ = tracker_step_camera(TrackerState.empty(), d, _ego(t), t, CFG, cam)
    assert state.counters.camera_unreliable == 2
    assert state.counters.created == 0 and len(state) == 0
