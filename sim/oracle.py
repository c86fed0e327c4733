"""The oracle sensor: ground truth with configurable noise and dropout, in the stack's message types.

A permanent mode for testing planning and control in isolation from perception: it produces the
same Detections3D an object detector would (vehicle frame, source "oracle") and an EgoState like a
localisation filter would. Box z is the box centre above the ground under the vehicle frame origin.
Random draws have fixed shapes (all actors, before range gating and dropout), so the stream of
draws, and so every later output, depends only on the actor count and the seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.jit import kernel
from core.messages import Detections3D, EgoState
from sim.normal_draws import NormalDraws
from sim.scenario import OracleConfig
from sim.truth import ActorsTruth, EgoTruth

SOURCE = "oracle"


def _checked_pose(ego: EgoTruth) -> tuple[float, float, float]:
    """The ego pose as three floats (math is cheaper than a ufunc and a reduction); raises on a
    non-finite pose or speed."""
    x, y, yaw = ego.pose.tolist()
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(yaw) and math.isfinite(ego.speed_mps)):
        raise ValueError(f"non-finite ego truth at t_ns={ego.t_ns}: pose {ego.pose}, speed {ego.speed_mps}")
    return x, y, yaw


@dataclass(frozen=True, slots=True)
class EgoNoise:
    """The oracle ego's noise model, derived once per run from its config (it never changes)."""

    # 1-sigma of x, y [m], yaw [rad], speed [m/s], yaw rate [rad/s] and acceleration [m/s^2]
    # (the order of oracle_ego's draws), read-only.
    sigmas: np.ndarray
    covariance: np.ndarray  # (5, 5) read-only: one array shared by every EgoState of the run

    @staticmethod
    def from_config(cfg: OracleConfig) -> "EgoNoise":
        sig = np.array([cfg.ego_position_sigma_m, cfg.ego_position_sigma_m, cfg.ego_yaw_sigma_rad,
                        cfg.ego_speed_sigma_mps, cfg.ego_yaw_rate_sigma_rps])
        # A floor keeps the matrix invertible for filters when a sigma is configured 0.
        covariance = np.diag(np.maximum(sig, 1e-6) ** 2)
        covariance.flags.writeable = False
        sigmas = np.append(sig, float(cfg.ego_accel_sigma_mps2))
        sigmas.flags.writeable = False
        return EgoNoise(sigmas, covariance)


def oracle_objects(ego: EgoTruth, actors: ActorsTruth, rng: np.random.Generator,
                   cfg: OracleConfig) -> Detections3D:
    """Actors within range_m of the ego, in the vehicle frame, noisy, with per-object dropout."""
    x, y, yaw = _checked_pose(ego)
    n = actors.ids.shape[0]  # len(actors), without the method call
    if n == 0:
        return Detections3D.empty(ego.t_ns, SOURCE)
    # One draw of 5N normals: the position (N, 2), velocity (N, 2) and yaw (N,) draws one after
    # another (_detect reads them in place). A Generator's normals are drawn one after another with
    # nothing carried between calls, so these are exactly the values of three calls of those shapes,
    # for two calls' overhead less.
    normal_z = rng.normal(0.0, 1.0, 5 * n)
    uniform = rng.random(n)
    labels = actors.labels
    if labels.dtype != np.int16:  # the message's label type (the world's truth has it already)
        labels = labels.astype(np.int16)
    # Positional, in Detections3D's field order (t_ns, source, boxes, velocities, velocity_valid,
    # labels, scores): the keyword form costs a microsecond more.
    return Detections3D(actors.t_ns, SOURCE, *_detect(
        x, y, yaw, actors.xy_m, actors.yaw_rad, actors.speed_mps, actors.length_m, actors.width_m, actors.height_m,
        labels, normal_z, uniform, cfg.position_sigma_m, cfg.velocity_sigma_mps, cfg.yaw_sigma_rad, cfg.dropout_prob,
        cfg.range_m))


# Any float64 array of the given rank, read-only ones (the world's shared truth columns) included.
_R1, _R2 = "Array(float64, 1, 'A', readonly=True)", "Array(float64, 2, 'A', readonly=True)"
_LABELS = "Array(int16, 1, 'A', readonly=True)"


@kernel(f"Tuple((float32[:, ::1], float32[:, ::1], boolean[::1], int16[::1], float32[::1]))(float64, float64,"
        f" float64, {_R2}, {_R1}, {_R1}, {_R1}, {_R1}, {_R1}, {_LABELS}, float64[::1], float64[::1], float64, float64,"
        " float64, float64, float64)")
def _detect(ego_x, ego_y, ego_yaw, xy_m, yaw_rad, speed_mps, length_m, width_m, height_m, labels, normal_z, uniform,
            position_sigma_m, velocity_sigma_mps, yaw_sigma_rad, dropout_prob, range_m):
    """The oracle's detections of N actors from the ego pose (x, y, yaw) and the run's standard
    normal draws ``normal_z`` (5N: the position (N, 2), velocity (N, 2) and yaw (N,) draws, in
    that order) and uniform draws (N,): Detections3D's arrays from boxes on (boxes (M, 7) and
    vehicle-frame velocities (M, 2) as float32, all velocities valid, the M detected actors'
    labels, scores of 1).

    An actor is detected where its uniform draw passes the dropout, its vehicle-frame position is
    finite and within range_m. Operation for operation the numpy code it replaced
    (core.geometry.map_to_se2 and wrap_angle, ActorsTruth.velocity_mps, the noise products; kept
    in tests/sim/test_oracle_kernel.py as the bit-exact reference), one call instead of ~40.
    """
    n = xy_m.shape[0]
    if (yaw_rad.shape[0] != n or speed_mps.shape[0] != n or length_m.shape[0] != n or width_m.shape[0] != n
            or height_m.shape[0] != n or labels.shape[0] != n or normal_z.shape[0] != 5 * n or uniform.shape[0] != n):
        raise ValueError("oracle: actor columns or draws of inconsistent lengths")
    c, s = math.cos(ego_yaw), math.sin(ego_yaw)
    local = np.empty((n, 2))
    idx = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        dx, dy = xy_m[i, 0] - ego_x, xy_m[i, 1] - ego_y
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        local[i, 0], local[i, 1] = lx, ly
        if (uniform[i] >= dropout_prob and math.isfinite(lx) and math.isfinite(ly)
                and math.hypot(lx, ly) <= range_m):
            idx[m] = i
            m += 1
    boxes = np.empty((m, 7), dtype=np.float32)
    velocities = np.empty((m, 2), dtype=np.float32)
    velocity_valid = np.empty(m, dtype=np.bool_)
    labels_out = np.empty(m, dtype=np.int16)
    scores = np.empty(m, dtype=np.float32)
    vel_at, yaw_at = 2 * n, 4 * n
    for k in range(m):
        i = idx[k]
        boxes[k, 0] = np.float32(local[i, 0] + normal_z[2 * i] * position_sigma_m)
        boxes[k, 1] = np.float32(local[i, 1] + normal_z[2 * i + 1] * position_sigma_m)
        boxes[k, 2] = np.float32(0.5 * height_m[i])
        boxes[k, 3] = np.float32(length_m[i])
        boxes[k, 4] = np.float32(width_m[i])
        boxes[k, 5] = np.float32(height_m[i])
        rel_yaw = yaw_rad[i] - ego_yaw + normal_z[yaw_at + i] * yaw_sigma_rad
        boxes[k, 6] = np.float32((rel_yaw + math.pi) % (2.0 * math.pi) - math.pi)
        vx, vy = speed_mps[i] * math.cos(yaw_rad[i]), speed_mps[i] * math.sin(yaw_rad[i])
        velocities[k, 0] = np.float32(c * vx + s * vy + normal_z[vel_at + 2 * i] * velocity_sigma_mps)
        velocities[k, 1] = np.float32(-s * vx + c * vy + normal_z[vel_at + 2 * i + 1] * velocity_sigma_mps)
        velocity_valid[k] = True
        labels_out[k] = labels[i]
        scores[k] = np.float32(1.0)
    return boxes, velocities, velocity_valid, labels_out, scores


def oracle_ego(ego: EgoTruth, draws: NormalDraws, noise: EgoNoise) -> EgoState:
    """Noisy ego pose and motion; the covariance is the diagonal of the noise actually applied.

    The speed is clipped at zero like a wheel-speed-based estimate would be, so at standstill its
    error is half-normal, not the Gaussian the covariance states. The noise is applied in one
    compiled call (``_noisy_ego``): at 50 Hz, on six numbers, the Python float maths it replaced
    (kept in tests/sim/test_oracle_kernel.py as the reference) cost more in interpretation than
    in arithmetic; the operations are the same, so the bits are. ``draws``: the ego noise's own
    standard normal stream, six values a message (x, y, yaw, speed, yaw rate, acceleration).
    """
    z = draws.take(6)
    pose = np.empty(3)
    finite, speed, accel, yaw_rate = _noisy_ego(ego.pose, ego.speed_mps, ego.accel_mps2, ego.yaw_rate_rps, z,
                                                noise.sigmas, pose)
    if not finite:  # the draws are made by then: harmless, as the error ends the run
        _checked_pose(ego)  # raises its error for the non-finite pose or speed
    # Positional, in EgoState's field order (t_ns, pose, speed, accel, yaw rate, covariance).
    return EgoState(ego.t_ns, pose, speed, accel, yaw_rate, noise.covariance)


@kernel(f"Tuple((boolean, float64, float64, float64))({_R1}, float64, float64, float64, {_R1}, {_R1}, float64[::1])")
def _noisy_ego(pose, speed_mps, accel_mps2, yaw_rate_rps, z, sigmas, pose_out):
    """oracle_ego's noise on the ego truth from six standard normal draws ``z`` (x, y, yaw, speed,
    yaw rate, acceleration) and their sigmas: (whether the pose and speed are finite (nothing is
    written if not), speed, acceleration, yaw rate), the pose written into ``pose_out``. The yaw is
    wrapped as core.geometry.wrap_angle does (Python's float modulo, which numba's % follows), the
    speed clipped at zero as Python's max(v, 0.0) does (v itself unless 0.0 > v)."""
    x, y, yaw = pose[0], pose[1], pose[2]
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(yaw) and math.isfinite(speed_mps)):
        return False, speed_mps, accel_mps2, yaw_rate_rps
    n_x, n_y, n_yaw = z[0] * sigmas[0], z[1] * sigmas[1], z[2] * sigmas[2]
    n_v, n_w, n_a = z[3] * sigmas[3], z[4] * sigmas[4], z[5] * sigmas[5]
    pose_out[0], pose_out[1] = x + n_x, y + n_y
    pose_out[2] = (yaw + n_yaw + math.pi) % (2.0 * math.pi) - math.pi
    v = speed_mps + n_v
    return True, (0.0 if 0.0 > v else v), accel_mps2 + n_a, yaw_rate_rps + n_w
