"""Tracking in the odometry frame: the ego filter's odometry pose, the map conversion of tracks,
and the fusion stage keeping GNSS corrections out of track velocities."""
import math

import numpy as np
import pytest

from core.messages import Detections3D, GnssFix, ImuSample, Tracks, WheelSpeed
from fusion.ego_ekf import EgoConfig, EgoFilterState, ego_odom_output, ego_output, ego_update
from fusion.odom_frame import tracks_to_map
from fusion.pipeline import FusionConfig, FusionState, fusion_step
from fusion.sync import StreamConfig, SyncConfig
from core.messages import EgoState

MS = 1_000_000


def _ego(t_ns, x, y, yaw, cov=None):
    return EgoState(t_ns, np.array([x, y, yaw]), 10.0, 0.0, 0.0, np.zeros((5, 5)) if cov is None else cov)


def _tracks(t_ns, states, covs, yaws):
    n = len(states)
    return Tracks(t_ns, np.arange(n, dtype=np.int64), np.array(states, float), np.array(covs, float),
                  np.array(yaws, float), np.tile([4.5, 1.9, 1.6], (n, 1)), np.zeros(n, np.int16), np.ones(n))


def test_tracks_to_map_closed_form_rotation_and_translation():
    # Odometry ego at the origin facing +x; the same ego in the map at (10, 5) facing +y.
    odom, map_ = _ego(0, 0.0, 0.0, 0.0), _ego(0, 10.0, 5.0, math.pi / 2)
    p = np.diag([1.0, 4.0, 0.25, 0.01])
    out = tracks_to_map(_tracks(0, [[3.0, 1.0, 1.0, 0.0]], [p], [0.1]), odom, map_)
    # 3 m ahead and 1 m left of an ego facing +y at (10, 5): (9, 8); velocity along +x turns to +y.
    np.testing.assert_allclose(out.states[0], [9.0, 8.0, 0.0, 1.0], atol=1e-12)
    assert out.yaws[0] == pytest.approx(0.1 + math.pi / 2)
    # The covariance turns a quarter turn: x and y variances swap, as do vx and vy.
    np.testing.assert_allclose(out.covariances[0], np.diag([4.0, 1.0, 0.01, 0.25]), atol=1e-12)


def test_tracks_to_map_adds_the_map_pose_uncertainty():
    cov = np.zeros((5, 5))
    cov[0, 0], cov[1, 1], cov[2, 2] = 0.25, 0.16, 0.01**2  # ego map pose: 0.5 m, 0.4 m, 0.01 rad
    odom, map_ = _ego(0, 0.0, 0.0, 0.0), _ego(0, 0.0, 0.0, 0.0, cov)
    p = np.eye(4) * 0.04
    out = tracks_to_map(_tracks(0, [[50.0, 0.0, 0.0, 0.0]], [p], [0.0]), odom, map_)
    # 50 m ahead: the yaw doubt adds (50 * 0.01)^2 = 0.25 m^2 across, the position doubt its own.
    assert out.covariances[0, 0, 0] == pytest.approx(0.04 + 0.25)
    assert out.covariances[0, 1, 1] == pytest.approx(0.04 + 0.16 + 0.25)


def test_tracks_to_map_refuses_mismatched_times():
    with pytest.raises(ValueError, match="same time"):
        tracks_to_map(_tracks(0, [[1.0, 0.0, 0.0, 0.0]], [np.eye(4)], [0.0]), _ego(0, 0, 0, 0), _ego(5, 0, 0, 0))


def _straight_drive_messages(duration_s, gnss_offset_y_m, offset_from_s):
    """Ego sensors of a car driving along +x at 10 m/s; GNSS reads ``gnss_offset_y_m`` to the left
    from ``offset_from_s`` on (a multipath step small enough to pass the NIS gate)."""
    msgs = []
    for k in range(0, int(duration_s * 100)):
        t = k * 10 * MS
        msgs.append(ImuSample(t, np.array([0.0, 0.0, 9.81]), 0.0))
        if k % 2 == 1:
            msgs.append(WheelSpeed(t + 5 * MS, 10.0))
        if k % 10 == 3:
            ts = t + 3 * MS
            y = gnss_offset_y_m if ts * 1e-9 >= offset_from_s else 0.0
            msgs.append(GnssFix(ts, np.array([10.0 * ts * 1e-9, y]), 0.5))
    return sorted(msgs, key=lambda m: m.t_ns)


def test_a_gnss_step_moves_the_map_pose_but_not_the_odometry_pose():
    cfg = EgoConfig()
    state = EgoFilterState.at(0, np.array([0.0, 0.0, 0.0]), 10.0, (0.1, 0.1, 0.01), 0.1)
    for m in _straight_drive_messages(6.0, 0.8, 3.0):
        state = ego_update(state, m, cfg)
    t = state.t_ns
    map_pose, odom_pose = ego_output(state, t, cfg).pose, ego_odom_output(state, t, cfg).pose
    assert map_pose[1] > 0.3  # the map pose followed the GNSS step (partly)
    assert abs(odom_pose[1]) < 0.05 and abs(odom_pose[2]) < 0.01  # dead reckoning did not
    assert odom_pose[0] == pytest.approx(10.0 * t * 1e-9, abs=0.05)
    assert np.all(ego_odom_output(state, t, cfg).covariance[:3] == 0.0)


def test_fusion_keeps_gnss_corrections_out_of_track_velocities():
    """A parked car ahead, seen by lidar while the ego's GNSS steps 0.8 m sideways: the track
    stays parked (the map-frame tracker read the step as a lateral speed), and its position
    relative to the ego stays what the lidar measures."""
    streams = {name: StreamConfig(latency_window_ns=150_000_000) for name in ("imu", "wheel", "gnss", "lidar")}
    cfg = FusionConfig(sync=SyncConfig(streams=streams))
    state = FusionState(ego_filter=EgoFilterState.at(0, np.array([0.0, 0.0, 0.0]), 10.0, (0.1, 0.1, 0.01), 0.1))
    ego_msgs = _straight_drive_messages(6.0, 0.8, 3.0)
    stream_of = {ImuSample: "imu", WheelSpeed: "wheel", GnssFix: "gnss"}
    max_vy, last = 0.0, None
    for step in range(1, 61):  # 10 Hz fusion steps, a lidar frame each
        t = step * 100 * MS
        arrivals = [(stream_of[type(m)], m) for m in ego_msgs if (step - 1) * 100 * MS < m.t_ns <= t]
        x_rel = 100.0 - 10.0 * t * 1e-9  # the parked car at x = 100 m
        box = np.array([[x_rel, 0.0, 0.0, 4.5, 1.9, 1.6, 0.0]], np.float32)
        arrivals.append(("lidar", Detections3D(t, "lidar", box, np.zeros((1, 2), np.float32), np.zeros(1, bool),
                                               np.zeros(1, np.int16), np.ones(1, np.float32))))
        state, out = fusion_step(state, arrivals, t, cfg)
        if len(out.tracks) and step > 10:
            max_vy = max(max_vy, abs(float(out.tracks.states[0, 3])))
            last = (out.tracks, out.ego)
    assert last is not None, "no confirmed track"
    tracks, ego = last
    assert max_vy < 0.1, max_vy
    c, s = math.cos(ego.pose[2]), math.sin(ego.pose[2])
    d = tracks.states[0, :2] - ego.pose[:2]
    assert d[0] * c + d[1] * s == pytest.approx(100.0 - 10.0 * 6.0, abs=0.3)
    assert abs(-d[0] * s + d[1] * c) < 0.1  # straight ahead, as the lidar says


def _rot(a):
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _composed(state, odom_pose, map_pose):
    """map <- odom by composition: the track in the ego's vehicle frame, placed with the map pose."""
    a = _rot(map_pose[2]) @ _rot(-odom_pose[2])
    return np.r_[a @ (state[:2] - odom_pose[:2]) + map_pose[:2], a @ state[2:]]


def test_tracks_to_map_matches_the_composed_transform_for_any_poses():
    # The tests above keep the odometry pose at the origin facing +x (and their covariances
    # diagonal, which a quarter turn either way maps alike): a wrong rotation sense of the
    # odometry -> vehicle step, of the covariance turn, or of the yaw offset passes them.
    gen = np.random.default_rng(7)
    for _ in range(50):
        odom_pose = np.r_[gen.normal(0.0, 50.0, 2), gen.uniform(-math.pi, math.pi)]
        map_pose = np.r_[gen.normal(0.0, 500.0, 2), gen.uniform(-math.pi, math.pi)]
        states = np.c_[odom_pose[:2] + gen.normal(0.0, 40.0, (3, 2)), gen.normal(0.0, 10.0, (3, 2))]
        a = gen.normal(size=(3, 4, 4))
        covs = a @ a.transpose(0, 2, 1)
        yaws = gen.uniform(-math.pi, math.pi, 3)
        out = tracks_to_map(_tracks(0, states, covs, yaws), _ego(0, *odom_pose), _ego(0, *map_pose))
        b = np.kron(np.eye(2), _rot(map_pose[2] - odom_pose[2]))
        for i in range(3):
            np.testing.assert_allclose(out.states[i], _composed(states[i], odom_pose, map_pose), atol=1e-9)
            np.testing.assert_allclose(out.covariances[i], b @ covs[i] @ b.T, atol=1e-9)
            assert math.remainder(out.yaws[i] - (yaws[i] - odom_pose[2] + map_pose[2]), math.tau) == pytest.approx(0.0, abs=1e-12)
            assert -math.pi <= out.yaws[i] < math.pi


def test_tracks_to_map_pose_term_is_the_jacobian_of_placing_with_the_map_pose():
    # Correlated map-pose covariance (x-yaw, y-yaw terms) and a turned odometry frame; velocity
    # rows too (the map yaw turns the velocity). Reference: central differences of the placement.
    odom_pose, map_pose = np.array([3.0, -2.0, 0.7]), np.array([100.0, 40.0, -2.0])
    pose_cov = np.array([[0.3, 0.1, 0.004], [0.1, 0.2, -0.002], [0.004, -0.002, 0.0004]])
    cov5 = np.zeros((5, 5))
    cov5[:3, :3] = pose_cov
    state = np.array([30.0, 25.0, 8.0, -3.0])
    p = np.diag([0.2, 0.3, 0.5, 0.4])
    out = tracks_to_map(_tracks(0, [state], [p], [0.0]), _ego(0, *odom_pose), _ego(0, *map_pose, cov5))
    eps = 1e-6
    jt = np.column_stack([(_composed(state + eps * e, odom_pose, map_pose) - _composed(state - eps * e, odom_pose, map_pose))
                          / (2 * eps) for e in np.eye(4)])
    jp = np.column_stack([(_composed(state, odom_pose, map_pose + eps * e) - _composed(state, odom_pose, map_pose - eps * e))
                          / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(out.covariances[0], jt @ p @ jt.T + jp @ pose_cov @ jp.T, rtol=1e-6, atol=1e-9)


def test_tracks_to_map_identity_and_empty():
    pose = (12.0, -4.0, 2.5)
    tr = _tracks(0, [[20.0, 1.0, 3.0, -1.0]], [np.eye(4) * 0.5], [0.3])
    out = tracks_to_map(tr, _ego(0, *pose), _ego(0, *pose))
    np.testing.assert_allclose(out.states, tr.states, atol=1e-12)
    np.testing.assert_allclose(out.covariances, tr.covariances, atol=1e-12)
    np.testing.assert_allclose(out.yaws, tr.yaws, atol=1e-12)
    assert out.ids.tolist() == tr.ids.tolist()
    empty = Tracks.empty(0)
    assert len(tracks_to_map(empty, _ego(0, *pose), _ego(0, 0.0, 0.0, 1.0))) == 0


def test_the_odometry_pose_follows_the_map_pose_exactly_without_measurements_and_stays_wrapped():
    # Pure prediction (no measurement, so nothing corrects the map pose): both poses take the same
    # mid-point steps, and 20 s at 0.7 rad/s wraps the yaw about twice.
    from dataclasses import replace
    from fusion.ego_ekf import ego_outputs
    state = EgoFilterState.at(0, np.array([5.0, -3.0, 3.0]), 10.0, (0.1, 0.1, 0.01), 0.1)
    x = state.x.copy()
    x[4] = 0.7
    state = replace(state, x=x)
    for t_s in (0.5, 4.5, 20.0):
        map_ego, odom_ego = ego_outputs(state, int(t_s * 1e9), EgoConfig())
        np.testing.assert_allclose(odom_ego.pose[:2], map_ego.pose[:2], atol=1e-9)
        assert math.remainder(odom_ego.pose[2] - map_ego.pose[2], math.tau) == pytest.approx(0.0, abs=1e-9)
        assert abs(odom_ego.pose[2]) <= math.pi
        assert map_ego.t_ns == odom_ego.t_ns == int(t_s * 1e9)


def _lidar_box(t, x, y):
    box = np.array([[x, y, 0.0, 4.5, 1.9, 1.6, 0.0]], np.float32)
    return Detections3D(t, "lidar", box, np.zeros((1, 2), np.float32), np.zeros(1, bool),
                        np.zeros(1, np.int16), np.ones(1, np.float32))


def test_oracle_ego_runs_keep_tracks_in_the_map_frame():
    """With an oracle EgoState the tracks are placed with it and handed on as they are: an ego
    EKF started elsewhere (a start-up prior at the origin facing +x) must not re-place them."""
    streams = {name: StreamConfig(latency_window_ns=50_000_000) for name in ("ego", "lidar")}
    cfg = FusionConfig(sync=SyncConfig(streams=streams))
    state = FusionState(ego_filter=EgoFilterState.at(0, np.array([0.0, 0.0, 0.0]), 10.0, (1.0, 1.0, 0.1), 0.1))
    out = None
    for step in range(1, 16):
        t = step * 100 * MS
        ego = EgoState(t, np.array([100.0, 200.0 + t * 1e-8, math.pi / 2]), 10.0, 0.0, 0.0, np.zeros((5, 5)))
        # A car 20 m ahead of the ego, keeping pace: in the map at (100, 220 + 10 t).
        state, out = fusion_step(state, [("ego", ego), ("lidar", _lidar_box(t, 20.0, 0.0))], t, cfg)
    assert len(out.tracks) == 1
    t_s = out.tracks.t_ns * 1e-9
    np.testing.assert_allclose(out.tracks.states[0, :2], [100.0, 220.0 + 10.0 * t_s], atol=0.5)
    assert abs(out.tracks.states[0, 3] - 10.0) < 0.5 and abs(out.tracks.states[0, 2]) < 0.5
    # Nor is the EKF's map-pose doubt (1 m, 0.1 rad: 2 m across at 20 m) added to the oracle's.
    assert np.sqrt(out.tracks.covariances[0, [0, 1], [0, 1]]).max() < 0.5


def test_gnss_start_with_unknown_heading_keeps_one_track_while_the_map_yaw_converges():
    """The filter starts from a GNSS fix with yaw 0 (sigma pi); the car drives north. While the map
    yaw swings from 0 to pi/2, a parked car ahead keeps one track in the odometry frame (tracked in
    the map frame, every swing of the yaw re-placed it: 13 tracks created, 12 deleted), and once
    the yaw has converged it is handed on where it stands, parked."""
    streams = {name: StreamConfig(latency_window_ns=150_000_000) for name in ("imu", "wheel", "gnss", "lidar")}
    cfg = FusionConfig(sync=SyncConfig(streams=streams))
    gen = np.random.default_rng(0)
    x0, u = np.array([1000.0, -500.0]), np.array([0.0, 1.0])
    car = x0 + 120.0 * u + np.array([-3.0, 0.0])  # 120 m ahead, 3 m to the left
    msgs = []
    for k in range(600):
        t = k * 10 * MS
        msgs.append(("imu", ImuSample(t, np.array([0.0, 0.0, 9.81]), 0.0)))
        if k % 2:
            msgs.append(("wheel", WheelSpeed(t + 5 * MS, 10.0)))
        if k % 10 == 3:
            ts = t + 3 * MS
            msgs.append(("gnss", GnssFix(ts, x0 + 10.0 * ts * 1e-9 * u + gen.normal(0.0, 0.5, 2), 0.5)))
    state, out = FusionState(), None
    for step in range(1, 61):
        t = step * 100 * MS
        arrivals = [m for m in msgs if (step - 1) * 100 * MS < m[1].t_ns <= t]
        rel = car - (x0 + 10.0 * t * 1e-9 * u)
        arrivals.append(("lidar", _lidar_box(t, float(rel[1]), float(-rel[0]))))
        state, out = fusion_step(state, arrivals, t, cfg)
        if out.ego is not None:
            assert out.tracks.t_ns == out.ego.t_ns
    assert state.tracker.counters.created == 1 and state.tracker.counters.deleted == 0
    assert len(out.tracks) == 1
    np.testing.assert_allclose(out.tracks.states[0, :2], car, atol=1.0)
    assert np.hypot(*out.tracks.states[0, 2:]) < 0.2


def test_ego_estimate_without_measurements_goes_stale_after_max_age():
    """The output ego is predicted to the step's time, so its age must come from the newest ego
    measurement: with no IMU, wheel or GNSS message after the start-up prior, it is handed on for
    max_ego_age_s and then withheld (the planner and the safety monitor then see the gap)."""
    cfg = FusionConfig(sync=SyncConfig(streams={"imu": StreamConfig(latency_window_ns=0)}), max_ego_age_s=0.5)
    state = FusionState(ego_filter=EgoFilterState.at(0, np.array([0.0, 0.0, 0.0]), 20.0, (0.1, 0.1, 0.01), 0.1))
    state, out = fusion_step(state, [], 300 * MS, cfg)
    assert out.ego is not None and out.ego.t_ns == 300 * MS
    state, out = fusion_step(state, [], 2000 * MS, cfg)
    assert out.ego is None
    # One IMU sample makes it fresh again.
    state, out = fusion_step(state, [("imu", ImuSample(2000 * MS, np.array([0.0, 0.0, 9.81]), 0.0))], 2000 * MS, cfg)
    assert out.ego is not None and out.ego.pose[0] == pytest.approx(40.0, abs=1e-6)


def test_gnss_fixes_the_gate_rejects_do_not_keep_the_ego_fresh():
    # The filter predicts to every fix before gating it, so its own time moved with rejected
    # fixes too, and a run of multipath fixes kept an unmeasured ego "fresh" indefinitely.
    cfg = FusionConfig(sync=SyncConfig(streams={"gnss": StreamConfig(latency_window_ns=0)}), max_ego_age_s=0.5)
    state = FusionState(ego_filter=EgoFilterState.at(0, np.array([0.0, 0.0, 0.0]), 20.0, (0.1, 0.1, 0.01), 0.1))
    fresh = []
    for k in range(1, 31):
        t = k * 100 * MS
        fix = GnssFix(t, np.array([20.0 * t * 1e-9 + 200.0, 200.0]), 1.0)  # 280 m off: rejected
        state, out = fusion_step(state, [("gnss", fix)], t, cfg)
        fresh.append(out.ego is not None)
    assert state.ego_filter.counters.gnss_outliers == 30 and state.ego_filter.counters.applied == 0
    assert fresh == [k * 0.1 <= 0.5 + 1e-9 for k in range(1, 31)]  # fresh for max_ego_age_s, then withheld
