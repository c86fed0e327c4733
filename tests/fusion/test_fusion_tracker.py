import numpy as np
import pytest
from scipy.stats import chi2

from core.messages import Detections3D, EgoState
from fusion.tracker import tracker_predict, tracker_step
from fusion.tracker_state import SourceModel, TrackerConfig, TrackerState
from fusion_reference import (detections, filterpy_predict, filterpy_track, filterpy_update,
                              still_ego)

STEP_NS = 100_000_000
SIGMA_M = 0.3
CFG = TrackerConfig(sources={"lidar": SourceModel(SIGMA_M, 0.4, 3.1416, 500.0)}, motion_model="cv")


def _targets(n, rng):
    # A grid keeps targets well outside each other's gates, so association is unambiguous.
    i = np.arange(n)
    pos = np.stack([(i % 10) * 25.0 - 110.0, (i // 10) * 25.0 - 110.0], axis=1)
    return pos, rng.uniform(-3, 3, (n, 2))


def test_batched_tracker_equals_filterpy_per_track_reference():
    rng = np.random.default_rng(7)
    n, q = 40, CFG.accel_psd_m2ps3
    pos0, vel = _targets(n, rng)
    state, refs = TrackerState.empty(), []
    for k in range(25):
        t = k * STEP_NS + int(rng.integers(0, 20_000_000))  # irregular frame intervals
        truth = pos0 + vel * t * 1e-9
        # Messages carry float32: the reference sees the same rounded values.
        z = (truth + rng.normal(0, SIGMA_M, truth.shape)).astype(np.float32).astype(np.float64)
        zv = (vel + rng.normal(0, 0.4, vel.shape)).astype(np.float32).astype(np.float64)
        vel_valid = rng.random(n) < 0.5
        state, _ = tracker_step(state, detections(t, z, vel=zv, vel_valid=vel_valid), still_ego(t), t, CFG)
        if k == 0:
            assert len(state) == n
            refs = [filterpy_track(state.x[i], state.p[i]) for i in range(n)]
            t_prev = t
            continue
        for i, kf in enumerate(refs):
            filterpy_predict(kf, (t - t_prev) * 1e-9, q)
            if vel_valid[i]:
                filterpy_update(kf, np.r_[z[i], zv[i]], np.diag([SIGMA_M**2] * 2 + [0.4**2] * 2))
            else:
                filterpy_update(kf, z[i], np.eye(2) * SIGMA_M**2)
        t_prev = t
    assert state.ids.tolist() == list(range(1, n + 1))
    for i, kf in enumerate(refs):
        np.testing.assert_allclose(state.x[i], kf.x, rtol=0, atol=1e-9)
        np.testing.assert_allclose(state.p[i], kf.P, rtol=0, atol=1e-9)


def test_nees_of_constant_velocity_target_is_consistent():
    # 60 independent Monte-Carlo runs side by side, far apart: one tracker, one batched filter.
    rng = np.random.default_rng(11)
    runs, steps, q, dt = 60, 40, 0.5, STEP_NS * 1e-9
    # A wide gate: at 2400 associations the default gate would leave a few true detections out.
    cfg = TrackerConfig(accel_psd_m2ps3=q, gate_probability=0.999999, motion_model="cv",
                        sources={"lidar": SourceModel(SIGMA_M, 0.4, 3.1416, 500.0)})
    pos, _ = _targets(runs, rng)
    x = np.concatenate([pos * 4.0, np.tile([4.0, 1.0], (runs, 1))], axis=1)
    state = TrackerState.empty()
    for k in range(steps):
        t = k * STEP_NS
        if k:  # the truth follows the white-acceleration model the filter assumes
            a = rng.normal(0, np.sqrt(q / dt), (runs, 2))
            x = np.concatenate([x[:, :2] + x[:, 2:] * dt + 0.5 * a * dt**2, x[:, 2:] + a * dt], axis=1)
        z = x[:, :2] + rng.normal(0, SIGMA_M, (runs, 2))
        state, _ = tracker_step(state, detections(t, z), still_ego(t), t, cfg)
    assert len(state) == runs
    e = state.x - x
    nees = np.einsum("ni,ni->n", e, np.linalg.solve(state.p, e[..., None])[..., 0])
    lo, hi = chi2.ppf([0.025, 0.975], 4 * runs) / runs
    assert lo <= nees.mean() <= hi


def test_confirmation_m_of_n_and_deletion_after_coasting():
    cfg = TrackerConfig(confirm_hits=3, confirm_window=5, max_coast_confirmed_s=0.5)
    state = TrackerState.empty()
    xy = np.array([[20.0, 0.0]])
    outputs = []
    for k in range(3):
        state, out = tracker_step(state, detections(k * STEP_NS, xy), still_ego(k * STEP_NS), k * STEP_NS, cfg)
        outputs.append(len(out))
    assert outputs == [0, 0, 1]  # tentative tracks are not output
    for k in range(3, 12):
        t = k * STEP_NS
        state, out = tracker_step(state, detections(t, np.zeros((0, 2))), still_ego(t), t, cfg)
        if (t - 2 * STEP_NS) * 1e-9 <= 0.5:
            assert len(out) == 1 and out.ids[0] == 1  # coasting
    assert len(state) == 0 and state.counters.deleted == 1


def test_nan_detection_is_rejected_and_does_not_poison_the_track():
    state = TrackerState.empty()
    for k in range(4):
        t = k * STEP_NS
        state, _ = tracker_step(state, detections(t, np.array([[15.0, 3.0]])), still_ego(t), t, CFG)
    t = 4 * STEP_NS
    bad = detections(t, np.array([[np.nan, 3.0], [15.0, np.inf]]))
    state, out = tracker_step(state, bad, still_ego(t), t, CFG)
    assert state.counters.rejected_nonfinite == 2
    assert np.isfinite(state.x).all() and np.isfinite(state.p).all() and len(out) == 1
    nan_vel = detections(t + STEP_NS, np.array([[15.0, 3.0]]), vel=np.array([[np.nan, 0.0]]),
                         vel_valid=np.array([True]))
    state, out = tracker_step(state, nan_vel, still_ego(t + STEP_NS), t + STEP_NS, CFG)
    assert state.counters.invalidated_velocity == 1 and state.hits[0] == 5
    assert np.isfinite(out.states).all()


def test_non_finite_ego_pose_skips_the_frame():
    state, _ = tracker_step(TrackerState.empty(), detections(0, np.array([[5.0, 0.0]])),
                            still_ego(0, pose=(np.nan, 0.0, 0.0)), 0, CFG)
    assert len(state) == 0 and state.counters.bad_ego_frames == 1


def test_stale_frame_is_counted_and_never_applied_backwards():
    state, _ = tracker_step(TrackerState.empty(), detections(STEP_NS, np.array([[5.0, 0.0]])),
                            still_ego(STEP_NS), STEP_NS, CFG)
    before = state
    state, out = tracker_step(state, detections(0, np.array([[9.0, 0.0]])), still_ego(0), 0, CFG)
    assert state.counters.stale_frames == 1 and state.t_ns == STEP_NS
    np.testing.assert_array_equal(state.x, before.x)
    assert out.t_ns == STEP_NS  # a query in the past is answered at the state time


def test_wrong_shapes_raise():
    d = detections(0, np.array([[5.0, 0.0]]))
    bad = Detections3D(0, "lidar", d.boxes[:, :6], d.velocities_mps, d.velocity_valid, d.labels, d.scores)
    with pytest.raises(ValueError, match="boxes"):
        tracker_step(TrackerState.empty(), bad, still_ego(0), 0, CFG)


def test_ego_motion_compensation_keeps_a_static_object_static_in_the_map():
    state = TrackerState.empty()
    obj_map = np.array([50.0, 10.0])
    for k in range(20):
        t = k * STEP_NS
        yaw = 0.02 * k
        ego_xy = np.array([1.5 * k, 0.2 * k])
        c, s = np.cos(yaw), np.sin(yaw)
        rel = np.array([[c, s], [-s, c]]) @ (obj_map - ego_xy)
        state, out = tracker_step(state, detections(t, rel[None]), still_ego(t, (*ego_xy, yaw)), t, CFG)
    np.testing.assert_allclose(out.states[0, :2], obj_map, atol=1e-6)
    np.testing.assert_allclose(out.states[0, 2:], 0.0, atol=1e-6)


def test_twin_detection_inside_a_gate_does_not_spawn_a_track():
    state = TrackerState.empty()
    state, _ = tracker_step(state, detections(0, np.array([[20.0, 0.0]])), still_ego(0), 0, CFG)
    state, _ = tracker_step(state, detections(STEP_NS, np.array([[20.0, 0.0], [20.3, 0.2]])),
                            still_ego(STEP_NS), STEP_NS, CFG)
    assert len(state) == 1


def test_class_fusion_follows_the_evidence():
    state = TrackerState.empty()
    for k in range(6):
        t = k * STEP_NS
        label = 0 if k == 0 else 1
        state, _ = tracker_step(state, detections(t, np.array([[8.0, 2.0]]), labels=np.array([label])),
                                still_ego(t), t, CFG)
    assert state.labels.tolist() == [1]


def test_out_of_view_tracks_do_not_count_misses():
    cfg = TrackerConfig(sources={"lidar": SourceModel(0.3, 0.4, 3.1416, 500.0),
                                 "camera": SourceModel(1.0, 1.0, 0.5, 80.0)})
    state = TrackerState.empty()
    for k in range(3):
        t = k * STEP_NS
        state, _ = tracker_step(state, detections(t, np.array([[-20.0, 0.0], [20.0, 0.0]])),
                                still_ego(t), t, cfg)
    t = 3 * STEP_NS
    state, _ = tracker_step(state, detections(t, np.zeros((0, 2)), source="camera"), still_ego(t), t, cfg)
    assert state.misses.tolist() == [0, 1]  # the camera looks forward: only the track ahead missed
    assert state.existence[0] > state.existence[1]


def test_predict_moves_tracks_and_is_deterministic():
    rng = np.random.default_rng(5)
    def run():
        state = TrackerState.empty()
        for k in range(5):
            t = k * STEP_NS
            z = np.array([[10.0 + k, 0.0], [-30.0, 4.0 - 0.5 * k]]) + rng.normal(0, 0.1, (2, 2))
            state, _ = tracker_step(state, detections(t, z), still_ego(t), t, CFG)
        return state
    rng = np.random.default_rng(5)
    a = run()
    rng = np.random.default_rng(5)
    b = run()
    pa, pb = tracker_predict(a, 10 * STEP_NS, CFG), tracker_predict(b, 10 * STEP_NS, CFG)
    np.testing.assert_array_equal(pa.states, pb.states)
    assert pa.t_ns == 10 * STEP_NS
    assert pa.states[0, 0] > a.x[0, 0] + 3.0  # moving at ~10 m/s for 0.6 s


def test_default_source_coverage_matches_the_shipped_rig_and_detector_grid():
    # The tracker's defaults restate the shipped rig and BEV grid; deriving them must change nothing.
    from perception.bev import BevGridConfig
    from runtime.perception_factory import tracker_for_rig
    from sim.sensors.config import SensorRigConfig
    cfg = TrackerConfig()
    derived = tracker_for_rig(cfg, SensorRigConfig(), BevGridConfig())
    for name in ("lidar", "radar", "camera", "lidar_classical"):
        assert name in cfg.sources
        a, b = cfg.source(name), derived.source(name)
        for f in ("mount_x_m", "mount_y_m", "mount_yaw_rad", "fov_half_rad", "max_range_m",
                  "x_min_m", "x_max_m", "y_min_m", "y_max_m"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), abs=1e-4), (name, f)


def test_a_track_outside_the_lidar_grid_is_not_missed_by_lidar_frames():
    # A track 70 m ahead (radar range, beyond the lidar detector's 52 m grid) keeps its hit
    # history through empty lidar frames; one 30 m ahead counts the misses.
    cfg = TrackerConfig()
    ego = EgoState(0, np.zeros(3), 0.0, 0.0, 0.0, np.eye(5) * 1e-6)
    def frame(t, source, xs):
        xs = np.asarray(xs, dtype=np.float32)
        boxes = np.zeros((xs.size, 7), np.float32)
        boxes[:, 0] = xs
        boxes[:, 3:6] = (4.5, 1.9, 1.6)
        return Detections3D(t, source, boxes, np.zeros((xs.size, 2), np.float32), np.zeros(xs.size, bool),
                            np.zeros(xs.size, np.int16), np.full(xs.size, 0.9, np.float32))
    state = TrackerState.empty()
    state, _ = tracker_step(state, frame(0, "radar", [30.0, 70.0]), ego, 0, cfg)
    for k in range(1, 3):
        state, _ = tracker_step(state, frame(k * 10_000_000, "lidar", []), ego, k * 10_000_000, cfg)
    order = np.argsort(state.x[:, 0])
    assert state.misses[order].tolist() == [2, 0]
    assert state.existence[order[1]] == pytest.approx(0.9)  # untouched by frames that could not see it


def _frame3d(t, source, xs, ys=None):
    xs = np.asarray(xs, dtype=np.float32)
    boxes = np.zeros((xs.size, 7), np.float32)
    boxes[:, 0] = xs
    if ys is not None:
        boxes[:, 1] = ys
    boxes[:, 3:6] = (4.5, 1.9, 1.6)
    return Detections3D(t, source, boxes, np.zeros((xs.size, 2), np.float32), np.zeros(xs.size, bool),
                        np.zeros(xs.size, np.int16), np.full(xs.size, 0.9, np.float32))


def _camera_fed_track(with_lidar_frames: bool) -> TrackerState:
    """A car 30 m ahead confirmed by radar and camera; then only the camera keeps reporting it,
    while the lidar (covering it) does or does not deliver frames."""
    cfg = TrackerConfig()
    ego = EgoState(0, np.zeros(3), 0.0, 0.0, 0.0, np.eye(5) * 1e-6)
    state, t = TrackerState.empty(), 0
    for k in range(4):
        t = k * 50_000_000
        state, _ = tracker_step(state, _frame3d(t, "radar", [30.0]), ego, t, cfg)
        state, _ = tracker_step(state, _frame3d(t + 10_000_000, "camera", [30.0]), ego, t + 10_000_000, cfg)
    assert state.confirmed.tolist() == [True]
    for k in range(cfg.max_trusted_misses + 1):
        t += 50_000_000
        state, _ = tracker_step(state, _frame3d(t, "camera", [30.0]), ego, t, cfg)
        if with_lidar_frames:
            state, _ = tracker_step(state, _frame3d(t + 1, "lidar", []), ego, t + 1, cfg)
    return state


def test_a_track_only_the_camera_still_reports_dies_when_the_lidar_keeps_missing_it():
    gone = _camera_fed_track(with_lidar_frames=True)
    assert len(gone) == 0 and gone.counters.unconfirmed_by_trusted == 1
    kept = _camera_fed_track(with_lidar_frames=False)  # lidar and radar silent: camera-only survives
    assert len(kept) == 1 and kept.trusted_misses.tolist() == [0]


def _dense_association(x, p, z, r, gate_d2):
    """Reference: every track-detection pair scored, the whole matrix solved at once."""
    from scipy.optimize import linear_sum_assignment
    s = p[:, None, :2, :2] + r[None]
    e = z[None, :, :] - x[:, None, :2]
    det = s[..., 0, 0] * s[..., 1, 1] - s[..., 0, 1] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        d2 = (s[..., 1, 1] * e[..., 0] ** 2 - 2 * s[..., 0, 1] * e[..., 0] * e[..., 1]
              + s[..., 0, 0] * e[..., 1] ** 2) / det
        gated = (det > 0) & (d2 <= gate_d2)
        cost = np.where(gated, d2 + np.log(np.where(gated, det, 1.0)), 1e9)
    rows, cols = linear_sum_assignment(cost)
    ok = gated[rows, cols]
    return set(zip(rows[ok].tolist(), cols[ok].tolist())), gated.any(axis=0)


def test_association_sweep_equals_the_dense_solution():
    from fusion.association import associate, gate_threshold
    rng = np.random.default_rng(21)
    gate = gate_threshold(0.9999)
    contested = 0
    for trial in range(20):
        n, m = rng.integers(0, 60), rng.integers(0, 60)
        # Clustered positions: many tracks share gates, so contested pairs occur.
        x = np.concatenate([rng.normal(0, 8, (n, 2)), rng.normal(0, 1, (n, 2))], axis=1)
        centres = x[rng.integers(0, n, m), :2] if n else rng.normal(0, 8, (m, 2))
        z = centres + rng.normal(0, 0.7, (m, 2))
        a = rng.normal(size=(n, 4, 4))
        p = a @ np.swapaxes(a, 1, 2) * 0.2 + np.eye(4) * 0.05
        b = rng.normal(size=(m, 2, 2))
        r = b @ np.swapaxes(b, 1, 2) * 0.1 + np.eye(2) * 0.05
        if n > 2 and m > 2 and trial % 3 == 0:
            x[0, 0] = np.nan  # a broken track and detection gate nothing
            z[1, 1] = np.nan
            p[1, 0, 0] = np.inf  # an infinite covariance reaches everything and still gates nothing
        got = associate(x, p, z, r, gate)
        contested += got.n_contested
        want, in_gate = _dense_association(x, p, z, r, gate)
        assert set(zip(got.track_idx.tolist(), got.det_idx.tolist())) == want
        np.testing.assert_array_equal(got.det_in_any_gate, in_gate)
    assert contested > 0  # the assignment solver's path was exercised, not only forced pairs


def test_map_measurement_covariance_is_the_jacobian_propagation_of_the_ego_pose():
    from fusion.frames import to_map
    rng = np.random.default_rng(22)
    m = 25
    xy, v = rng.normal(0, 30, (m, 2)), rng.normal(0, 5, (m, 2))
    valid = rng.random(m) < 0.5
    pose = np.array([3.0, -2.0, 0.6])
    a = rng.normal(size=(3, 3))
    pose_cov = a @ a.T * 1e-3
    meas = to_map(pose, pose_cov, xy, v, valid, np.zeros(m), 0.3, 0.5)
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rot, drot = np.array([[c, -s], [s, c]]), np.array([[-s, -c], [c, -s]])
    v0 = np.where(valid[:, None], v, 0.0)
    np.testing.assert_allclose(meas.z, np.c_[xy @ rot.T + pose[:2], v0 @ rot.T], rtol=0, atol=1e-12)
    jac = np.zeros((m, 4, 3))
    jac[:, 0, 0] = jac[:, 1, 1] = 1.0
    jac[:, :, 2] = np.c_[xy @ drot.T, v0 @ drot.T]
    want = jac @ pose_cov @ np.swapaxes(jac, 1, 2) + np.diag([0.09, 0.09, 0.25, 0.25])
    np.testing.assert_allclose(meas.r, want, rtol=1e-12, atol=1e-15)


def test_in_order_update_fast_path_equals_the_scattered_update():
    from fusion.tracker import apply_linear_updates
    rng = np.random.default_rng(23)
    n = 12
    x = rng.normal(size=(n, 4))
    a = rng.normal(size=(n, 4, 4))
    p = a @ np.swapaxes(a, 1, 2) + np.eye(4)
    z = x + rng.normal(size=(n, 4))
    b = rng.normal(size=(n, 4, 4))
    r = b @ np.swapaxes(b, 1, 2) * 0.1 + np.eye(4) * 0.1
    perm = rng.permutation(n)
    for valid in (np.ones(n, bool), np.zeros(n, bool)):
        fast = apply_linear_updates(x, p, np.arange(n), z, r, valid)
        # The same pairs in another order take the general gather/scatter path.
        slow = apply_linear_updates(x, p, perm, z[perm], r[perm], valid[perm])
        for f, s in zip(fast, slow):
            np.testing.assert_array_equal(f, s)
            assert not np.shares_memory(f, x) and not np.shares_memory(f, p)


def test_every_track_hit_path_equals_the_general_path():
    # A frame that hits every track takes apply_frame's steady-state path (no miss or coverage
    # terms, whole-array rows, no confirmation once all are confirmed). One more track that the
    # frame's source cannot see (behind a forward radar, never confirmed) sends the same frame
    # down the general path, which must leave every other track, the counters and the output
    # exactly as the steady-state path does.
    from dataclasses import replace
    cfg = TrackerConfig()
    rng = np.random.default_rng(24)
    n = 30
    i = np.arange(n)
    pos0 = np.stack([30.0 + (i % 10) * 9.0, (i // 10) * 8.0 - 8.0], axis=1)
    vel = rng.uniform(-1.0, 1.0, (n, 2))
    per_track = ("ids", "x", "p", "yaw", "size", "class_loglik", "hit_history", "hits", "misses",
                 "confirmed", "existence", "last_hit_ns", "last_nis", "source_mask", "trusted_misses",
                 "mode_prob", "xm", "pm")
    state, compared = TrackerState.empty(), 0
    for k in range(12):
        t = k * 20_000_000
        ego = EgoState(t, np.array([0.5 * t * 1e-9, 0.1, 0.02]), 0.5, 0.01, 0.0, np.eye(5) * 1e-4)
        order = rng.permutation(n) if k % 3 == 2 else i  # detections out of track order too
        xy = pos0 + vel * t * 1e-9 + rng.normal(0, 0.1, (n, 2))
        det = detections(t, xy[order], ("lidar", "radar")[k % 2], vel=vel[order],
                         vel_valid=rng.random(n) < 0.7, labels=rng.integers(0, 2, n),
                         scores=rng.uniform(0.5, 1.0, n))
        if k >= 3 and det.source == "radar":
            decoy = replace(state, **{f: np.concatenate([getattr(state, f), getattr(state, f)[:1]])
                                      for f in per_track})
            decoy.ids[-1], decoy.confirmed[-1], decoy.hit_history[-1] = 999, False, 0
            decoy.source_mask[-1], decoy.last_hit_ns[-1] = 0, state.t_ns
            decoy.x[-1] = (-60.0, 0.0, 0.0, 0.0)
            slow_state, slow_out = tracker_step(decoy, det, ego, t, cfg)
        state, out = tracker_step(state, det, ego, t, cfg)
        if k >= 3 and det.source == "radar":
            assert len(state) == n and (state.last_hit_ns == t).all()  # every track hit
            assert len(slow_state) == n + 1 and slow_state.last_hit_ns[-1] != t
            for f in per_track:
                np.testing.assert_array_equal(getattr(slow_state, f)[:-1], getattr(state, f))
            assert (slow_state.counters, slow_state.next_id) == (state.counters, state.next_id)
            for f in ("ids", "states", "covariances", "yaws", "sizes", "labels", "existence"):
                np.testing.assert_array_equal(getattr(slow_out, f), getattr(out, f))
            compared += 1
    assert compared == 5 and state.confirmed.all()
