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

from core.geometry import map_to_se2, wrap_angle
from core.messages import Detections3D, EgoState
from sim.scenario import OracleConfig
from sim.truth import ActorsTruth, EgoTruth

SOURCE = "oracle"


def _check_pose(ego: EgoTruth) -> None:
    x, y, yaw = ego.pose.tolist()  # three floats: math is cheaper than a ufunc and a reduction
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(yaw) and math.isfinite(ego.speed_mps)):
        raise ValueError(f"non-finite ego truth at t_ns={ego.t_ns}: pose {ego.pose}, speed {ego.speed_mps}")


@dataclass(frozen=True, slots=True)
class EgoNoise:
    """The oracle ego's noise model, derived once per run from its config (it never changes)."""

    # 1-sigma of x, y [m], yaw [rad], speed [m/s], yaw rate [rad/s] and acceleration [m/s^2].
    sigmas: tuple[float, float, float, float, float, float]
    covariance: np.ndarray  # (5, 5) read-only: one array shared by every EgoState of the run

    @staticmethod
    def from_config(cfg: OracleConfig) -> "EgoNoise":
        sig = np.array([cfg.ego_position_sigma_m, cfg.ego_position_sigma_m, cfg.ego_yaw_sigma_rad,
                        cfg.ego_speed_sigma_mps, cfg.ego_yaw_rate_sigma_rps])
        # A floor keeps the matrix invertible for filters when a sigma is configured 0.
        covariance = np.diag(np.maximum(sig, 1e-6) ** 2)
        covariance.flags.writeable = False
        return EgoNoise((*sig.tolist(), float(cfg.ego_accel_sigma_mps2)), covariance)


def oracle_objects(ego: EgoTruth, actors: ActorsTruth, rng: np.random.Generator,
                   cfg: OracleConfig) -> Detections3D:
    """Actors within range_m of the ego, in the vehicle frame, noisy, with per-object dropout."""
    _check_pose(ego)
    n = len(actors)
    if n == 0:
        return Detections3D.empty(ego.t_ns, SOURCE)
    pos_noise = rng.normal(0.0, 1.0, (n, 2)) * cfg.position_sigma_m
    vel_noise = rng.normal(0.0, 1.0, (n, 2)) * cfg.velocity_sigma_mps
    yaw_noise = rng.normal(0.0, 1.0, n) * cfg.yaw_sigma_rad
    kept = rng.random(n) >= cfg.dropout_prob

    xy = map_to_se2(ego.pose, actors.xy_m)
    # Finite-only: a broken actor row is dropped rather than poisoning the planner with NaN.
    visible = kept & np.isfinite(xy).all(axis=1) & (np.hypot(xy[:, 0], xy[:, 1]) <= cfg.range_m)
    c, s = np.cos(ego.pose[2]), np.sin(ego.pose[2])
    v_map = actors.velocity_mps
    v_veh = np.stack([c * v_map[:, 0] + s * v_map[:, 1], -s * v_map[:, 0] + c * v_map[:, 1]], axis=-1)
    idx = np.flatnonzero(visible)
    boxes = np.column_stack([
        xy[idx] + pos_noise[idx],
        0.5 * actors.height_m[idx],
        actors.length_m[idx], actors.width_m[idx], actors.height_m[idx],
        wrap_angle(actors.yaw_rad[idx] - ego.pose[2] + yaw_noise[idx]),
    ]).astype(np.float32)
    return Detections3D(
        t_ns=actors.t_ns, source=SOURCE, boxes=boxes.reshape(-1, 7),
        velocities_mps=(v_veh[idx] + vel_noise[idx]).astype(np.float32).reshape(-1, 2),
        velocity_valid=np.ones(idx.shape[0], dtype=bool),
        labels=actors.labels[idx].astype(np.int16), scores=np.ones(idx.shape[0], dtype=np.float32))


def oracle_ego(ego: EgoTruth, rng: np.random.Generator, noise: EgoNoise) -> EgoState:
    """Noisy ego pose and motion; the covariance is the diagonal of the noise actually applied.

    The speed is clipped at zero like a wheel-speed-based estimate would be, so at standstill its
    error is half-normal, not the Gaussian the covariance states. Scalar maths on plain floats (this
    runs at 50 Hz on six numbers): the same IEEE operations as the array form, so the same bits.
    """
    _check_pose(ego)
    z = rng.normal(0.0, 1.0, 6).tolist()
    n_x, n_y, n_yaw, n_v, n_w, n_a = (zi * si for zi, si in zip(z, noise.sigmas))
    x, y, yaw = ego.pose.tolist()
    yaw_noisy = (yaw + n_yaw + math.pi) % (2.0 * math.pi) - math.pi  # core.geometry.wrap_angle on a float
    return EgoState(t_ns=ego.t_ns, pose=np.array([x + n_x, y + n_y, yaw_noisy]),
                    speed_mps=max(ego.speed_mps + n_v, 0.0), accel_mps2=ego.accel_mps2 + n_a,
                    yaw_rate_rps=ego.yaw_rate_rps + n_w, covariance=noise.covariance)
