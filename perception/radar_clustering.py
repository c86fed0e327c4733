"""Radar: ego-motion compensation of Doppler, then DBSCAN clustering into objects.

DBSCAN is built from a cKDTree neighbour graph and scipy's connected components (no sklearn):
core points are those with at least ``min_samples`` neighbours (themselves included) within
``eps``; clusters are the connected components of core-to-core edges, and a border point joins the
cluster of any core neighbour. Points are clustered in (x, y, radial velocity * velocity_scale),
so two cars side by side at different speeds stay apart.

Output contract (Detections3D, source "radar"): box centre = cluster mean position, length/width =
cluster extent (at least ``min_size_m``), yaw 0 and height ``default_height_m`` (radar measures
neither). ``velocities_mps`` holds the ground-relative radial velocity vector (the measured
component along the line of sight, positive away from the sensor, times the unit line of sight);
``velocity_valid`` is False because the tangential component is not measured.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from core.config import rng
from core.messages import LABEL_VEHICLE, Detections3D, RadarScan

SOURCE = "radar"


@dataclass(frozen=True, slots=True)
class RadarClusterConfig:
    mount_x_m: float = field(default=3.7, metadata=rng(-50.0, 50.0))  # sensor position, vehicle frame
    mount_y_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))
    eps_m: float = field(default=2.5, metadata=rng(0.05, 50.0))
    velocity_scale_s: float = field(default=1.0, metadata=rng(0.0, 100.0))  # m per (m/s) in the metric
    min_samples: int = field(default=2, metadata=rng(1, 1000))
    min_size_m: float = field(default=1.0, metadata=rng(0.0, 20.0))
    default_height_m: float = field(default=1.5, metadata=rng(0.0, 10.0))


@dataclass(frozen=True, slots=True)
class RadarClusters:
    detections: Detections3D
    removed_nonfinite: int  # returns dropped for a NaN/inf field


def dbscan(features: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """(N, D) -> (N,) cluster labels, -1 for noise. Deterministic (no random order anywhere)."""
    n = features.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    pairs = cKDTree(features).query_pairs(eps, output_type="ndarray")
    degree = np.bincount(pairs.ravel(), minlength=n) + 1
    core = degree >= min_samples
    cc = pairs[core[pairs[:, 0]] & core[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(cc)), (cc[:, 0], cc[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    labels = np.where(core, comp, -1)
    # Border points: take the component of a core neighbour (the lowest-index pair wins, stably).
    border = pairs[core[pairs[:, 0]] ^ core[pairs[:, 1]]]
    if len(border):
        core_end = np.where(core[border[:, 0]], border[:, 0], border[:, 1])
        other = np.where(core[border[:, 0]], border[:, 1], border[:, 0])
        first = np.unique(other, return_index=True)[1]
        labels[other[first]] = comp[core_end[first]]
    # Renumber to 0..K-1 in order of first appearance.
    valid = labels >= 0
    _, dense = np.unique(labels[valid], return_inverse=True)
    out = np.full(n, -1, np.int64)
    out[valid] = dense
    return out


def radar_cluster_step(scan: RadarScan, ego_speed_mps: float, ego_yaw_rate_rps: float, t_ns: int,
                       cfg: RadarClusterConfig) -> RadarClusters:
    fields = np.stack([scan.range_m, scan.azimuth_rad, scan.range_rate_mps], axis=1).astype(np.float64)
    ok = np.isfinite(fields).all(axis=1)
    removed = int(len(ok) - ok.sum())
    r, az, rr = fields[ok, 0], fields[ok, 1], fields[ok, 2]
    if r.size == 0:
        return RadarClusters(Detections3D.empty(t_ns, SOURCE), removed)
    # Range and azimuth are reported about the vehicle origin (core.messages.RadarScan); the
    # Doppler is measured along the radar's own line of sight, from its mount.
    xy = r[:, None] * np.stack([np.cos(az), np.sin(az)], axis=1)
    from_mount = xy - np.array([cfg.mount_x_m, cfg.mount_y_m])
    los = from_mount / np.maximum(np.linalg.norm(from_mount, axis=1, keepdims=True), 1e-9)
    # Velocity of the sensor itself (rigid body: v + omega x r_mount), projected on each line of
    # sight; adding it back leaves the target's own ground-relative radial speed.
    v_sensor = np.array([ego_speed_mps - ego_yaw_rate_rps * cfg.mount_y_m, ego_yaw_rate_rps * cfg.mount_x_m])
    radial = rr + los @ v_sensor
    labels = dbscan(np.column_stack([xy, cfg.velocity_scale_s * radial]), cfg.eps_m, cfg.min_samples)
    keep = labels >= 0
    k = int(labels.max()) + 1 if keep.any() else 0
    if k == 0:
        return RadarClusters(Detections3D.empty(t_ns, SOURCE), removed)
    lab, pts, rad, u = labels[keep], xy[keep], radial[keep], los[keep]
    cnt = np.bincount(lab, minlength=k).astype(np.float64)
    mean = np.stack([np.bincount(lab, pts[:, j], k) for j in range(2)], axis=1) / cnt[:, None]
    lo = np.full((k, 2), np.inf); hi = np.full((k, 2), -np.inf)
    np.minimum.at(lo, lab, pts); np.maximum.at(hi, lab, pts)
    size = np.maximum(hi - lo, cfg.min_size_m)
    v_rad = np.bincount(lab, rad, k) / cnt
    u_mean = np.stack([np.bincount(lab, u[:, j], k) for j in range(2)], axis=1)
    u_mean /= np.maximum(np.linalg.norm(u_mean, axis=1, keepdims=True), 1e-9)
    boxes = np.column_stack([mean, np.full(k, 0.5 * cfg.default_height_m), size,
                             np.full(k, cfg.default_height_m), np.zeros(k)]).astype(np.float32)
    det = Detections3D(t_ns, SOURCE, boxes, (v_rad[:, None] * u_mean).astype(np.float32), np.zeros(k, bool),
                       np.full(k, LABEL_VEHICLE, np.int16), np.minimum(1.0, cnt / 4.0).astype(np.float32))
    return RadarClusters(det, removed)
