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
