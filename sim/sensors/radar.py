"""Automotive radar: several returns per road user from the box faces it sees, with Doppler.

Each return is reported in polar coordinates about the vehicle-frame origin (x = r cos az,
y = r sin az needs no extrinsics), while visibility, field of view, noise and the Doppler itself are
those of the radar at its mount: range rate is the relative velocity (target ground velocity minus
the radar's own velocity, ego yaw rate included) projected on the radar's line of sight.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.messages import LABEL_VEHICLE, RadarScan
from sim.sensors.config import RadarConfig
from sim.sensors.frames import LocalActors
from sim.truth import EgoTruth

CLUTTER_LABEL = -1
# Sample points along each side face (fractions along the edge): front, left, rear, right.
_FRACTIONS = np.array([0.15, 0.5, 0.85])
_EDGE_SIGNS = np.array([[[1, 1], [1, -1]], [[-1, 1], [1, 1]], [[-1, -1], [-1, 1]], [[1, -1], [-1, -1]]], dtype=np.float64)
_FACE_NORMALS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float64)
_RCS_TOTAL_DBSM = {LABEL_VEHICLE: 10.0}
_RCS_OTHER_DBSM = -8.0
_CLUTTER_RCS_DBSM = -12.0


@dataclass(frozen=True, slots=True)
class RadarTruth:
    t_ns: int
    point_ids: np.ndarray  # (M,) int64 per detection: actor id, or CLUTTER_LABEL


class RadarModel:
    def __init__(self, cfg: RadarConfig) -> None:
        if cfg.min_range_m >= cfg.max_range_m:
            raise ValueError(f"radar min_range_m {cfg.min_range_m} must be below max_range_m {cfg.max_range_m}")
        self.cfg = cfg
        mount = cfg.mount()
        self.origin_xy = mount.translation[:2].copy()
        self.yaw = float(np.arctan2(mount.rotation[1, 0], mount.rotation[0, 0]))
        self.half_fov = 0.5 * np.radians(cfg.hfov_deg)

    def sensor_velocity(self, ego: EgoTruth) -> np.ndarray:
        """Ground velocity of the radar, vehicle frame: v_ego x + omega z x r."""
        return np.array([ego.speed_mps - ego.yaw_rate_rps * self.origin_xy[1], ego.yaw_rate_rps * self.origin_xy[0]])

    def scan(self, t_ns: int, ego: EgoTruth, local: LocalActors, rng: np.random.Generator,
             noise_scale: float = 1.0) -> tuple[RadarScan, RadarTruth]:
        cfg = self.cfg
        v_sensor = self.sensor_velocity(ego)
        pts, owner = self._returns(local)  # (P, 2) vehicle frame, (P,) actor index
        rel = pts - self.origin_xy
        rng_m = np.hypot(rel[:, 0], rel[:, 1])
        los = rel / np.maximum(rng_m, 1e-9)[:, None]
        rr = np.einsum("pk,pk->p", local.velocity_mps[owner] - v_sensor, los) if len(pts) else np.zeros(0)
        detected = rng.random(len(pts)) < cfg.detection_prob
        pts, owner, rng_m, rr = pts[detected], owner[detected], rng_m[detected], rr[detected]
        per_actor = np.bincount(owner, minlength=len(local))
        total = np.where(local.labels == LABEL_VEHICLE, _RCS_TOTAL_DBSM[LABEL_VEHICLE], _RCS_OTHER_DBSM)
        rcs = total[owner] - 10.0 * np.log10(np.maximum(per_actor[owner], 1))
        az_s = np.arctan2(pts[:, 1] - self.origin_xy[1], pts[:, 0] - self.origin_xy[0]) - self.yaw
        # Stationary clutter, uniform over the field of view and the range interval.
        n_clutter = int(rng.poisson(cfg.clutter_rate))
        c_rng = rng.uniform(cfg.min_range_m, cfg.max_range_m, n_clutter)
        c_az = rng.uniform(-self.half_fov, self.half_fov, n_clutter)
        c_los = np.stack([np.cos(c_az + self.yaw), np.sin(c_az + self.yaw)], axis=-1)
        rng_all = np.concatenate([rng_m, c_rng])
        az_all = np.concatenate([az_s, c_az])
        rr_all = np.concatenate([rr, -(c_los @ v_sensor)])
        rcs_all = np.concatenate([rcs, np.full(n_clutter, _CLUTTER_RCS_DBSM)])
        ids = np.concatenate([local.ids[owner], np.full(n_clutter, CLUTTER_LABEL, dtype=np.int64)])
        m = len(rng_all)
        k = float(noise_scale)
        rng_all = rng_all + cfg.range_sigma_m * k * rng.standard_normal(m)
        az_all = az_all + cfg.azimuth_sigma_rad * k * rng.standard_normal(m)
        rr_all = rr_all + cfg.range_rate_sigma_mps * k * rng.standard_normal(m)
        rcs_all = rcs_all + cfg.rcs_sigma_db * k * rng.standard_normal(m)
        # Sensor polar -> vehicle-frame polar about the vehicle origin.
        x = self.origin_xy[0] + rng_all * np.cos(az_all + self.yaw)
        y = self.origin_xy[1] + rng_all * np.sin(az_all + self.yaw)
        f32 = np.float32
        scan = RadarScan(int(t_ns), "radar", np.hypot(x, y).astype(f32), np.arctan2(y, x).astype(f32),
                         rr_all.astype(f32), rcs_all.astype(f32))
        return scan, RadarTruth(int(t_ns), ids.astype(np.int64))

    def _returns(self, local: LocalActors) -> tuple[np.ndarray, np.ndarray]:
        """Points on the side faces that face the radar, in its FOV and range, not hidden by others."""
        n = len(local)
        if n == 0:
            return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
        half = 0.5 * local.sizes_m[:, :2]  # (N, 2)
        ends = _EDGE_SIGNS[None] * half[:, None, None, :]  # (N, 4 faces, 2 ends, 2) box frame
        local_pts = ends[:, :, :1] + (ends[:, :, 1:] - ends[:, :, :1]) * _FRACTIONS[None, None, :, None]
        c, s = np.cos(local.yaw_rad)[:, None, None], np.sin(local.yaw_rad)[:, None, None]
        rot = lambda v: np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)
        pts = rot(local_pts) + local.centers_m[:, None, None, :2]  # (N, 4, 3, 2)
        normals = rot(np.broadcast_to(_FACE_NORMALS[None, :, None, :], local_pts.shape))
        facing = np.einsum("nfpk,nfpk->nfp", normals, pts - self.origin_xy) < 0.0
        owner = np.broadcast_to(np.arange(n)[:, None, None], facing.shape)
        pts, owner = pts[facing], owner[facing]
        rel = pts - self.origin_xy
        r = np.hypot(rel[:, 0], rel[:, 1])
        az = np.arctan2(rel[:, 1], rel[:, 0])
        az_s = np.angle(np.exp(1j * (az - self.yaw)))
        keep = (np.abs(az_s) <= self.half_fov) & (r >= self.cfg.min_range_m) & (r <= self.cfg.max_range_m)
        keep &= ~self._occluded(local, az, r, owner)
        return pts[keep], owner[keep]

    def _occluded(self, local: LocalActors, az: np.ndarray, r: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """A return is hidden when another actor's angular extent covers it and lies nearer."""
        rel = local.centers_m[:, :2] - self.origin_xy
        dist = np.hypot(rel[:, 0], rel[:, 1])
        # Inscribed half-width: conservative so that returns at an occluder's edge stay visible.
        radius = 0.5 * np.minimum(local.sizes_m[:, 0], local.sizes_m[:, 1])
        half = np.arcsin(np.clip(radius / np.maximum(dist, 1e-9), 0.0, 1.0))
        centre = np.arctan2(rel[:, 1], rel[:, 0])
        cover = np.cos(az[:, None] - centre[None]) >= np.cos(half)[None]
        nearer = (dist - radius)[None] < r[:, None] - 0.3
        other = owner[:, None] != np.arange(len(local))[None]
        return (cover & nearer & other).any(axis=1)
