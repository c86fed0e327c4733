"""The oracle sensor: ground truth with configurable noise and dropout, in the stack's message types.

A permanent mode for testing planning and control in isolation from perception: it produces the
same Detections3D an object detector would (vehicle frame, source "oracle") and an EgoState like a
localisation filter would. Box z is the box centre above the ground under the vehicle frame origin.
Random draws have fixed shapes (all actors, before range gating and dropout), so the stream of
draws, and so every later output, depends only on the actor count and the seed.
"""
from __future__ import annotations

import numpy as np

from core.geometry import map_to_se2, wrap_angle
from core.messages import Detections3D, EgoState
from sim.scenario import OracleConfig
from sim.truth import ActorsTruth, EgoTruth

SOURCE = "oracle"


def _check_pose(ego: EgoTruth) -> None:
    if not (np.all(np.isfinite(ego.pose)) and np.isfinite(ego.speed_mps)):
        raise ValueError(f"non-finite ego truth at t_ns={ego.t_ns}: pose {ego.pose}, speed {ego.speed_mps}")


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


def oracle_ego(ego: EgoTruth, rng: np.random.Generator, cfg: OracleConfig) -> EgoState:
    """Noisy ego pose and motion; the covariance is the diagonal of the noise actually applied.

    The speed is clipped at zero like a wheel-speed-based estimate would be, so at standstill its
    error is half-normal, not the Gaussian the covariance states.
    """
    _check_pose(ego)
    sig = np.array([cfg.ego_position_sigma_m, cfg.ego_position_sigma_m, cfg.ego_yaw_sigma_rad,
                    cfg.ego_speed_sigma_mps, cfg.ego_yaw_rate_sigma_rps])
    noise = rng.normal(0.0, 1.0, 6) * np.append(sig, cfg.ego_accel_sigma_mps2)
    pose = np.array([ego.pose[0] + noise[0], ego.pose[1] + noise[1], float(wrap_angle(ego.pose[2] + noise[2]))])
    return EgoState(t_ns=ego.t_ns, pose=pose, speed_mps=max(ego.speed_mps + float(noise[3]), 0.0),
                    accel_mps2=ego.accel_mps2 + float(noise[5]),
                    yaw_rate_rps=ego.yaw_rate_rps + float(noise[4]),
                    # A floor keeps the matrix invertible for filters when a sigma is configured 0.
                    covariance=np.diag(np.maximum(sig, 1e-6) ** 2))
