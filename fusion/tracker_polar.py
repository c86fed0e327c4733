"""Tracker updates from the polar sensors: camera (bearing, range) and radar (range, azimuth,
range rate), each with its own nonlinear measurement model and a batched EKF update.

Association and births share the Cartesian path (``polar_to_map``); the matched pairs are then
updated in the sensor's native coordinates, with the innovation covariance
S = H P H^T + H_e P_e H_e^T + R, where H_e is the Jacobian by the ego pose (x, y, yaw) and P_e its
covariance: the ego's doubt is measurement noise the tracks must not absorb as certainty.
"""
from __future__ import annotations

import numpy as np

from core.geometry import wrap_angle
from core.messages import Detections2D, Detections3D, EgoState, Tracks
from fusion import kalman, polar_kernels
from fusion.frames import MapMeasurements
from fusion.sensor_models import (BEARING, CameraModel, PolarMeasurements, RadarModel,
                                  camera_measurements, extent_along, extent_bearing_var, polar_predict,
                                  polar_to_map, radar_measurements)
from fusion.detection_screen import check_shapes, valid_rows
from fusion.tracker import Frame, apply_frame, frame_pose, tracker_predict
from fusion.tracker_state import N_LABELS, TrackerConfig, TrackerState

# Size (length, width, height) per label given to a track born from a sensor that does not
# measure one, and assumed for its near-face range offset: a passenger car, a pedestrian.
_DEFAULT_SIZE_M = np.array([[4.5, 1.9, 1.6], [0.6, 0.6, 1.7]])
assert _DEFAULT_SIZE_M.shape[0] == N_LABELS


def polar_update(x: np.ndarray, p: np.ndarray, track_idx: np.ndarray, z: np.ndarray,
                 r: np.ndarray, pose: np.ndarray, pose_cov: np.ndarray, mount_xy: np.ndarray,
                 range_offset_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EKF update of tracks ``track_idx`` with native measurements z (K, m), r (K, m, m);
    ``range_offset_m`` (K,): the near-face offset of each matched track (see ``polar_predict``).

    Returns new (x, P) for all tracks and the NIS (K,) of each update in m dof. One compiled call
    (``polar_kernels.polar_update_at``): the numpy form's ~40 calls on a few tracks cost ~10 times
    its arithmetic.
    """
    if range_offset_m is None:
        range_offset_m = np.zeros(track_idx.shape[0])
    return polar_kernels.polar_update_at(x, p, track_idx, z, r, pose, pose_cov, mount_xy, range_offset_m)


def polar_update_rows(x: np.ndarray, p: np.ndarray, z: np.ndarray, r: np.ndarray, pose: np.ndarray,
                      pose_cov: np.ndarray, mount_xy: np.ndarray,
                      range_offset_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EKF update of every row x (R, n >= 4), p (R, n, n) with z (R, m), r (R, m, m): the IMM's
    rows, one per (track, model). The measurement depends on (x, y, vx, vy) only; components
    beyond (the turn rate) move through their covariance with those. Returns (x, P, log N(y; 0, S))."""
    if x.shape[0] == 0:
        return x.copy(), p.copy(), np.zeros(0)
    h, jx4, je = polar_predict(x[:, :4], pose, mount_xy, z.shape[1] == 3, range_offset_m)
    jx = np.zeros(jx4.shape[:2] + (x.shape[1],))
    jx[:, :, :4] = jx4
    y = z - h
    y[:, BEARING] = wrap_angle(y[:, BEARING])
    r_eff = r + je @ pose_cov @ np.swapaxes(je, 1, 2)
    x_u, p_u, y, s = kalman.update_innovation(x, p, y, jx, r_eff)
    maha = np.einsum("ni,ni->n", y, np.linalg.solve(s, y[..., None])[..., 0])
    sign, logdet = np.linalg.slogdet(s)
    ll = -0.5 * (maha + np.where(sign > 0, logdet, np.nan) + z.shape[1] * np.log(2.0 * np.pi))
    return x_u, p_u, ll


def _mount_map(pose: np.ndarray, mount_xy: np.ndarray) -> np.ndarray:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return pose[:2] + np.array([c * mount_xy[0] - s * mount_xy[1], s * mount_xy[0] + c * mount_xy[1]])


def _line_of_sight(x: np.ndarray, pose: np.ndarray, mount_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range (N,) and map bearing (N,) of track centres (x (N, >=2)) seen from the mount."""
    d = x[:, :2] - _mount_map(pose, mount_xy)
    return np.hypot(d[:, 0], d[:, 1]), np.arctan2(d[:, 1], d[:, 0])


def _polar_frame(t_meas: int, pose: np.ndarray, pose_cov: np.ndarray, pm: PolarMeasurements,
                 rows: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                 rejected: dict[str, int], source: str, near_face_fraction: float,
                 extent_bearing_fraction: float = 0.0) -> tuple[Frame, PolarMeasurements]:
    sub = PolarMeasurements(pm.z[rows], pm.r[rows], pm.keep[rows], pm.mount_xy_m)
    sizes = _DEFAULT_SIZE_M[labels]
    # Placed in the map as the centre of a default-size object heading like the ego (the usual
    # case in traffic), so gating compares like with like and a birth starts at the centre.
    los_map = pose[2] + sub.z[:, 1]
    ego_heading = np.full(rows.shape[0], pose[2])
    offset = near_face_fraction * extent_along(los_map, ego_heading, sizes)
    placed = sub
    if extent_bearing_fraction > 0.0 and rows.shape[0]:
        r = sub.r.copy()
        r[:, 1, 1] += extent_bearing_var(sub.z[:, 0] + offset,
                                         extent_along(los_map + 0.5 * np.pi, ego_heading, sizes),
                                         extent_bearing_fraction)
        placed = PolarMeasurements(sub.z, r, sub.keep, sub.mount_xy_m)
    xy, cov = polar_to_map(placed, pose, pose_cov, offset)
    m = rows.shape[0]
    z4 = np.zeros((m, 4))
    z4[:, :2] = xy
    r4 = np.zeros((m, 4, 4))
    r4[:, :2, :2] = cov
    # Neither sensor gives the heading: a newborn track takes the ego's, the usual case in traffic.
    meas = MapMeasurements(z4, r4, np.zeros(m, bool), np.full(m, pose[2]))
    return Frame(t_meas, pose, meas, sizes, labels, scores, False, rejected, source), sub


def _run(state, frame, sub, pose, pose_cov, src, cfg, near_face_fraction,
         extent_bearing_fraction: float = 0.0) -> TrackerState:
    def noise_and_offset(xy, ti, di):
        """Measurement noise and near-face range offset of detections ``di`` for the tracks ``ti``
        at positions ``xy`` (rows of the CV state or of the IMM's per-model rows)."""
        yaw, size = state.yaw[ti], state.size[ti]
        range_m, los = _line_of_sight(xy, pose, sub.mount_xy_m)
        offset = near_face_fraction * extent_along(los, yaw, size)
        r = sub.r[di]
        if extent_bearing_fraction > 0.0 and ti.size:
            # The track's own box gives the face width across the line of sight from the mount.
            r = r.copy()
            r[:, 1, 1] += extent_bearing_var(range_m, extent_along(los + 0.5 * np.pi, yaw, size),
                                             extent_bearing_fraction)
        return r, offset

    def update(x, p, ti, di):
        r, offset = noise_and_offset(x[ti], ti, di)
        x, p, _ = polar_update(x, p, ti, sub.z[di], r, pose, pose_cov, sub.mount_xy_m, offset)
        return x, p

    def update_rows(x, p, ti, di):
        # The IMM's rows: x (R, 5) are the rows themselves; ti names each row's track.
        r, offset = noise_and_offset(x, ti, di)
        return polar_update_rows(x, p, sub.z[di], r, pose, pose_cov, sub.mount_xy_m, offset)

    return apply_frame(state, frame, src, update, cfg, update_rows)


def tracker_step_camera(state: TrackerState, detections: Detections2D, ego: EgoState, t_ns: int,
                        cfg: TrackerConfig, camera: CameraModel) -> tuple[TrackerState, Tracks]:
    """``tracker_update_camera``, then the confirmed tracks predicted on to ``t_ns``."""
    state = tracker_update_camera(state, detections, ego, cfg, camera)
    return state, tracker_predict(state, t_ns, cfg)


def tracker_update_camera(state: TrackerState, detections: Detections2D, ego: EgoState,
                          cfg: TrackerConfig, camera: CameraModel) -> TrackerState:
    """Apply one camera frame (bearing from the box centre column, range from the ground plane)."""
    m = detections.boxes_px.shape[0] if detections.boxes_px.ndim == 2 else -1
    for name, shape in {"boxes_px": (m, 4), "labels": (m,), "scores": (m,), "range_m": (m,),
                        "range_sigma_m": (m,)}.items():
        if m < 0 or getattr(detections, name).shape != shape:
            raise ValueError(f"Detections2D.{name} from {detections.source!r}: shape "
                             f"{getattr(detections, name).shape}, expected {shape}")
    t_meas = int(detections.t_ns)
    ok, unapplied = frame_pose(state, t_meas, ego, cfg)
    if unapplied is not None:
        return unapplied
    pose, pose_cov = ok
    pm = camera_measurements(detections.boxes_px, detections.range_m, detections.range_sigma_m, camera)
    finite = (pm.keep | pm.unreliable) & np.isfinite(detections.boxes_px).all(axis=1) & np.isfinite(detections.scores)
    label_ok = (detections.labels >= 0) & (detections.labels < N_LABELS)
    rows = np.flatnonzero(finite & label_ok & ~pm.unreliable)
    frame, sub = _polar_frame(t_meas, pose, pose_cov, pm, rows,
                              detections.labels[rows].astype(np.int64),
                              detections.scores[rows].astype(np.float64),
                              {"rejected_nonfinite": int((~finite).sum()),
                               "rejected_label": int((finite & ~label_ok).sum()),
                               "camera_unreliable": int((finite & label_ok & pm.unreliable).sum())},
                              detections.source, camera.near_face_fraction)
    return _run(state, frame, sub, pose, pose_cov, cfg.source(detections.source), cfg,
                camera.near_face_fraction)


def tracker_step_radar(state: TrackerState, detections: Detections3D, ego: EgoState, t_ns: int,
                       cfg: TrackerConfig, radar: RadarModel) -> tuple[TrackerState, Tracks]:
    """``tracker_update_radar``, then the confirmed tracks predicted on to ``t_ns``."""
    state = tracker_update_radar(state, detections, ego, cfg, radar)
    return state, tracker_predict(state, t_ns, cfg)


def tracker_update_radar(state: TrackerState, detections: Detections3D, ego: EgoState,
                         cfg: TrackerConfig, radar: RadarModel) -> TrackerState:
    """Apply one frame of radar clusters as (range, azimuth, range rate) about the radar mount."""
    check_shapes(detections)
    t_meas = int(detections.t_ns)
    ok, unapplied = frame_pose(state, t_meas, ego, cfg)
    if unapplied is not None:
        return unapplied
    pose, pose_cov = ok
    keep, _, n_nonfinite, n_label, _ = valid_rows(detections)
    pm = radar_measurements(detections.boxes, detections.velocities_mps, radar)
    bad_rate = keep & ~pm.keep
    rows = np.flatnonzero(keep & pm.keep)
    # The cluster extent is the spread of its returns, not the object's size: births take the
    # label's default size.
    frame, sub = _polar_frame(t_meas, pose, pose_cov, pm, rows,
                              detections.labels[rows].astype(np.int64),
                              detections.scores[rows].astype(np.float64),
                              {"rejected_nonfinite": n_nonfinite + int(bad_rate.sum()),
                               "rejected_label": n_label},
                              detections.source, radar.near_face_fraction, radar.extent_bearing_fraction)
    return _run(state, frame, sub, pose, pose_cov, cfg.source(detections.source), cfg,
                radar.near_face_fraction, radar.extent_bearing_fraction)
