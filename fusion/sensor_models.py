"""Nonlinear measurement models of the camera (bearing, range) and the radar (range, azimuth,
range rate), for the tracker's EKF updates.

Both sensors measure in polar coordinates about their own mount on the vehicle. ``polar_predict``
gives, for every track, the predicted measurement h(x), its Jacobian by the track state and its
Jacobian by the ego pose, so the ego pose uncertainty joins the innovation covariance instead of
being ignored. ``polar_to_map`` converts native measurements into map positions with a linearised
covariance: association and births work on those (one gate for every sensor), while the update
itself uses the native model, where the noise really is Gaussian.

Conventions:
* camera (``core.messages.Detections2D``): bearing from the box centre column,
  ``mount_yaw - atan((u - cx) / fx)`` (pixels grow to the right, bearings to the left), range from
  the ground plane with the detector's own ``range_sigma_m``;
* radar (``Detections3D`` from radar clustering, source "radar"): range and azimuth of the box
  centre about the radar mount; ``velocities_mps`` holds the ground-relative radial velocity as a
  vector along the line of sight (``velocity_valid`` False), so the range rate is its projection on
  that line of sight, positive moving away.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.config import rng
from core.geometry import wrap_angle
from fusion import polar_kernels

BEARING = 1  # index of the angle in every polar measurement vector (range, bearing[, range rate])


@dataclass(frozen=True, slots=True)
class CameraModel:
    """Pinhole intrinsics that matter for bearing, and the camera's planar extrinsics."""

    fx_px: float = field(metadata=rng(1.0, 1e5))
    cx_px: float = field(metadata=rng(0.0, 1e5))
    mount_x_m: float = field(default=1.5, metadata=rng(-50.0, 50.0))  # vehicle frame
    mount_y_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))
    mount_yaw_rad: float = field(default=0.0, metadata=rng(-3.1416, 3.1416))
    centre_sigma_px: float = field(default=3.0, metadata=rng(0.01, 100.0))  # box-centre column noise
    # The ground-plane range meets the box's bottom edge, the face nearest the camera, not the
    # object's centre: the range measures |centre| minus this fraction of the object's extent along
    # the line of sight (0.8 measured on the shipped detector: its bottom edge sits a little low).
    near_face_fraction: float = field(default=0.8, metadata=rng(0.0, 1.0))
    # Image size; 0 = unknown, and then no box counts as truncated.
    width_px: float = field(default=0.0, metadata=rng(0.0, 1e5))
    height_px: float = field(default=0.0, metadata=rng(0.0, 1e5))
    # A box this close to the left, right or bottom image border is cut off by it: its centre
    # column is not the object's bearing (it lies towards the image centre) and its bottom edge is
    # not the object's ground contact (the range reads metres short, with a confident sigma). A car
    # alongside, half in view, was read 25 degrees inwards at 3 m and dragged its track into the
    # ego's lane. Such boxes are left out of fusion, counted.
    truncation_margin_px: float = field(default=2.0, metadata=rng(0.0, 1e4))
    # Nearer than this the shipped detector boxes parts of a car that fills the image (several
    # boxes per car, bottom edges 100 px off, ranges metres off at a 0.1 m sigma); there the lidar
    # sees the car in detail and the camera adds nothing but those errors. Left out, counted.
    min_range_m: float = field(default=10.0, metadata=rng(0.0, 1000.0))


@dataclass(frozen=True, slots=True)
class RadarModel:
    mount_x_m: float = field(default=3.7, metadata=rng(-50.0, 50.0))
    mount_y_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))
    mount_yaw_rad: float = field(default=0.0, metadata=rng(-3.1416, 3.1416))
    range_sigma_m: float = field(default=0.5, metadata=rng(1e-3, 20.0))  # cluster centre, not one return
    azimuth_sigma_rad: float = field(default=0.02, metadata=rng(1e-4, 1.0))
    range_rate_sigma_mps: float = field(default=0.3, metadata=rng(1e-3, 20.0))
    # Returns come from the faces that face the radar, so the cluster mean lies between the near
    # face (a car straight ahead) and the middle of a visible side: a fraction of the extent
    # along the line of sight short of the centre.
    near_face_fraction: float = field(default=0.6, metadata=rng(0.0, 1.0))
    # A cluster's azimuth is the centroid of returns spread over the visible face, not the centre's
    # bearing: its standard deviation grows by this fraction of the object's angular width
    # (1/sqrt(12) ~ 0.29 for returns uniform over the face). Far away that width is a few
    # milliradians; beside the car at 5 m it is half a radian, and a fixed 0.02 rad would drag a
    # track metres sideways onto the near corner.
    extent_bearing_fraction: float = field(default=0.3, metadata=rng(0.0, 2.0))


@dataclass(frozen=True, slots=True)
class PolarMeasurements:
    z: np.ndarray  # (M, m) range [m], bearing [rad] in the vehicle frame, [range rate m/s]
    r: np.ndarray  # (M, m, m)
    keep: np.ndarray  # (M,) bool: finite and usable rows of the input message
    mount_xy_m: np.ndarray  # (2,) sensor position in the vehicle frame
    # (M,) bool, camera only: finite but unreliable (cut off by the image border, or too near)
    unreliable: np.ndarray | None = None


def camera_measurements(boxes_px: np.ndarray, range_m: np.ndarray, range_sigma_m: np.ndarray,
                        cam: CameraModel) -> PolarMeasurements:
    u = 0.5 * (boxes_px[:, 0] + boxes_px[:, 2]).astype(np.float64)
    off = (u - cam.cx_px) / cam.fx_px
    bearing = cam.mount_yaw_rad - np.arctan(off)
    # d bearing / du = -1 / (fx (1 + off^2)): the angular size of a pixel shrinks off axis.
    bearing_sigma = cam.centre_sigma_px / (cam.fx_px * (1.0 + off * off))
    rng_m = range_m.astype(np.float64)
    sig = range_sigma_m.astype(np.float64)
    keep = np.isfinite(bearing) & np.isfinite(rng_m) & np.isfinite(sig) & (rng_m > 0.0) & (sig > 0.0)
    z = np.stack([np.where(keep, rng_m, 1.0), np.where(keep, bearing, 0.0)], axis=1)
    r = np.zeros((z.shape[0], 2, 2))
    r[:, 0, 0] = np.where(keep, sig, 1.0) ** 2
    r[:, 1, 1] = bearing_sigma**2
    unreliable = keep & (rng_m < cam.min_range_m)
    if cam.width_px > 0.0:
        m = cam.truncation_margin_px
        unreliable |= keep & ((boxes_px[:, 0] <= m) | (boxes_px[:, 2] >= cam.width_px - m))
    if cam.height_px > 0.0:
        unreliable |= keep & (boxes_px[:, 3] >= cam.height_px - cam.truncation_margin_px)
    return PolarMeasurements(z, r, keep & ~unreliable, np.array([cam.mount_x_m, cam.mount_y_m]), unreliable)


def radar_measurements(boxes: np.ndarray, radial_velocity: np.ndarray, radar: RadarModel) -> PolarMeasurements:
    mount = np.array([radar.mount_x_m, radar.mount_y_m])
    d = boxes[:, :2].astype(np.float64) - mount
    rng_m = np.hypot(d[:, 0], d[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.einsum("ij,ij->i", radial_velocity.astype(np.float64), d) / rng_m
    keep = np.isfinite(rng_m) & np.isfinite(rate) & (rng_m > 0.0)
    z = np.stack([np.where(keep, rng_m, 1.0), np.arctan2(d[:, 1], d[:, 0]), np.where(keep, rate, 0.0)],
                 axis=1)
    z[~keep, 1] = 0.0
    r = np.zeros((z.shape[0], 3, 3))
    r[:, 0, 0] = radar.range_sigma_m**2
    r[:, 1, 1] = radar.azimuth_sigma_rad**2
    r[:, 2, 2] = radar.range_rate_sigma_mps**2
    return PolarMeasurements(z, r, keep, mount)


def extent_bearing_var(range_m: np.ndarray, half_across_m: np.ndarray, fraction: float) -> np.ndarray:
    """Extra bearing variance (rad^2) of a centroid over a face ``2 * half_across_m`` wide seen at
    ``range_m``: (fraction * angular width)^2, the angular width 2 atan(half / range)."""
    return (fraction * 2.0 * np.arctan2(half_across_m, np.maximum(range_m, 1e-3))) ** 2


def extent_along(bearing_map: np.ndarray, yaw: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Distance (N,) from a box centre to its nearest face point along the line of sight of map
    heading ``bearing_map``: the support function of the (length, width) rectangle of heading ``yaw``."""
    rel = bearing_map - yaw
    return 0.5 * (size[:, 0] * np.abs(np.cos(rel)) + size[:, 1] * np.abs(np.sin(rel)))


def polar_predict(x: np.ndarray, pose: np.ndarray, mount_xy: np.ndarray, with_rate: bool,
                  range_offset_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h(x) (N, m), dh/dx (N, m, 4) and dh/d(ego x, y, yaw) (N, m, 3) for tracks x (N, 4).

    The bearing is returned in the vehicle frame, like the measurements. ``range_offset_m`` (N,):
    how far short of the track centre the sensor's range point lies (the near-face bias); it is
    taken as fixed in the Jacobians (it varies only with the aspect angle, slowly).
    """
    c, s = np.cos(pose[2]), np.sin(pose[2])
    mount_map = pose[:2] + np.array([c * mount_xy[0] - s * mount_xy[1], s * mount_xy[0] + c * mount_xy[1]])
    dmount_dyaw = np.array([-s * mount_xy[0] - c * mount_xy[1], c * mount_xy[0] - s * mount_xy[1]])
    d = x[:, :2] - mount_map
    r2 = np.maximum(d[:, 0] ** 2 + d[:, 1] ** 2, 1e-12)  # a track on the sensor: keep it finite
    rng_m = np.sqrt(r2)
    m = 3 if with_rate else 2
    n = x.shape[0]
    h = np.empty((n, m))
    h[:, 0] = rng_m if range_offset_m is None else rng_m - range_offset_m
    h[:, 1] = wrap_angle(np.arctan2(d[:, 1], d[:, 0]) - pose[2])
    dd = np.zeros((n, m, 2))  # d h / d d, where d = track position - sensor position (map)
    dd[:, 0] = d / rng_m[:, None]
    dd[:, 1, 0], dd[:, 1, 1] = -d[:, 1] / r2, d[:, 0] / r2
    jx = np.zeros((n, m, 4))
    if with_rate:
        v = x[:, 2:]
        rate = np.einsum("ij,ij->i", v, d) / rng_m
        h[:, 2] = rate
        dd[:, 2] = (v - rate[:, None] * d / rng_m[:, None]) / rng_m[:, None]
        jx[:, 2, 2:] = d / rng_m[:, None]
    jx[:, :, :2] = dd
    je = np.empty((n, m, 3))
    je[:, :, :2] = -dd
    je[:, :, 2] = -(dd @ dmount_dyaw)
    je[:, 1, 2] -= 1.0  # the bearing is measured relative to the vehicle heading
    return h, jx, je


def polar_to_map(meas: PolarMeasurements, pose: np.ndarray, pose_cov: np.ndarray,
                 range_offset_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map positions (M, 2) of polar measurements and their linearised covariance (M, 2, 2),
    ego pose uncertainty included; ``range_offset_m`` (M,) moves each point that far beyond the
    measured range (from the near face to the expected centre). One compiled call
    (``polar_kernels.polar_to_map_rows``): the numpy form was ~25 calls on a few rows."""
    if range_offset_m is None:
        range_offset_m = np.zeros(meas.z.shape[0])
    return polar_kernels.polar_to_map_rows(meas.z, meas.r, meas.mount_xy_m, pose, pose_cov, range_offset_m)
