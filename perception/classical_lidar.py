"""Classical lidar detection: RANSAC ground plane, BEV connected components, oriented boxes.

The fallback when the lidar network is missing or unhealthy, and the baseline in the evaluation.
Box fitting is batched over all clusters: for a fan of candidate headings every point is rotated
once and per-cluster extents come from ufunc.at reductions; each cluster keeps the heading whose
rectangle has the least area (an L-shaped partial view fits its true heading best).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from core.config import rng


@dataclass(frozen=True, slots=True)
class ClassicalConfig:
    range_x_m: float = field(default=52.0, metadata=rng(1.0, 200.0))  # |x| and |y| limits of the search
    range_y_m: float = field(default=26.0, metadata=rng(1.0, 200.0))
    ground_threshold_m: float = field(default=0.2, metadata=rng(0.01, 2.0))
    ransac_iterations: int = field(default=60, metadata=rng(10, 10_000))
    ransac_seed: int = field(default=0, metadata=rng(0, 2**31 - 1))
    ransac_max_points: int = field(default=8000, metadata=rng(100, 10_000_000))  # strided sample for the fit
    max_height_m: float = field(default=3.5, metadata=rng(0.5, 10.0))
    cell_m: float = field(default=0.4, metadata=rng(0.05, 2.0))
    min_points: int = field(default=8, metadata=rng(1, 10_000))
    min_length_m: float = field(default=1.0, metadata=rng(0.0, 50.0))
    max_length_m: float = field(default=12.0, metadata=rng(0.5, 50.0))
    max_width_m: float = field(default=4.0, metadata=rng(0.5, 50.0))
    heading_steps: int = field(default=18, metadata=rng(1, 180))
    # A cluster thinner than this shows one face only; it is completed to the nominal vehicle size
    # away from the sensor (the hidden part lies behind the face).
    single_face_m: float = field(default=0.8, metadata=rng(0.0, 5.0))
    nominal_length_m: float = field(default=4.6, metadata=rng(0.5, 20.0))
    nominal_width_m: float = field(default=1.9, metadata=rng(0.3, 5.0))


@dataclass(frozen=True, slots=True)
class ClassicalResult:
    boxes: np.ndarray  # (N, 7) float32
    scores: np.ndarray  # (N,) float32
    ground_plane: np.ndarray  # (4,) a, b, c, d of the fitted plane (ax + by + cz + d = 0)


def fit_ground_plane(points: np.ndarray, threshold_m: float, iterations: int, seed: int) -> np.ndarray:
    """RANSAC plane (a, b, c, d), unit normal with c >= 0, through (N >= 3, 3) float64 points: the
    candidate through three points drawn by ``np.random.default_rng(seed)`` with the most points
    within ``threshold_m`` (the first such on a tie), refitted by least squares to those inliers.

    All candidates are scored at once, one (iterations, N) distance array. open3d's segment_plane
    did this job before, and its parallel iterations made the plane (and so a detection near the
    ground threshold) change from call to call on the same points and seed."""
    rng = np.random.default_rng(seed)
    # Three distinct indices per draw: the second and third are offsets that skip the first.
    n = points.shape[0]
    i0 = rng.integers(0, n, iterations)
    i1 = (i0 + rng.integers(1, n, iterations)) % n
    i2 = rng.integers(0, n - 2, iterations)
    i2 = i2 + (i2 >= np.minimum(i0, i1)) + (i2 + 1 >= np.maximum(i0, i1))
    p0 = points[i0]
    normal = np.cross(points[i1] - p0, points[i2] - p0)
    norm = np.linalg.norm(normal, axis=1)
    ok = norm > 1e-9  # collinear draws have no plane: they score no inliers
    normal = normal / np.where(ok, norm, 1.0)[:, None]
    d = -np.einsum("ij,ij->i", normal, p0)
    inliers = np.abs(points @ normal.T + d) <= threshold_m  # (N, iterations)
    counts = np.where(ok, inliers.sum(axis=0), -1)
    best = int(np.argmax(counts))
    if counts[best] < 3:
        return np.array([0.0, 0.0, 1.0, 0.0])
    sel = points[inliers[:, best]]
    centre = sel.mean(axis=0)
    # The least-squares plane's normal: the direction of least spread of the inliers.
    normal = np.linalg.svd(sel - centre, full_matrices=False)[2][2]
    if normal[2] < 0:
        normal = -normal
    return np.array([normal[0], normal[1], normal[2], -float(normal @ centre)])


def remove_ground(points: np.ndarray, cfg: ClassicalConfig) -> tuple[np.ndarray, np.ndarray]:
    """(non-ground points above the plane and below max height, plane coefficients)."""
    if points.shape[0] < 3:
        return points, np.array([0.0, 0.0, 1.0, 0.0])
    # The plane is fitted on a strided sample (deterministic, spread over the whole sweep); the
    # inlier test below then runs on every point.
    step = max(1, points.shape[0] // cfg.ransac_max_points)
    plane = fit_ground_plane(points[::step].astype(np.float64), cfg.ground_threshold_m, cfg.ransac_iterations,
                             cfg.ransac_seed)
    if plane[2] < 0.9:  # not a road-like plane (a wall won the vote): assume the nominal ground
        plane = np.array([0.0, 0.0, 1.0, 0.0])
    height = points.astype(np.float64) @ plane[:3] + plane[3]
    keep = (height > cfg.ground_threshold_m) & (height < cfg.max_height_m)
    return points[keep], plane


def detect_classical(points: np.ndarray, cfg: ClassicalConfig) -> ClassicalResult:
    """Finite (N, 3) vehicle-frame points -> vehicle boxes."""
    near = (np.abs(points[:, 0]) < cfg.range_x_m) & (np.abs(points[:, 1]) < cfg.range_y_m)
    obj, plane = remove_ground(points[near], cfg)
    empty = ClassicalResult(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), plane)
    if obj.shape[0] < cfg.min_points:
        return empty
    shape = (int(np.ceil(2 * cfg.range_x_m / cfg.cell_m)), int(np.ceil(2 * cfg.range_y_m / cfg.cell_m)))
    r = np.clip(((obj[:, 0] + cfg.range_x_m) / cfg.cell_m).astype(np.int64), 0, shape[0] - 1)
    c = np.clip(((obj[:, 1] + cfg.range_y_m) / cfg.cell_m).astype(np.int64), 0, shape[1] - 1)
    occ = np.zeros(shape, dtype=bool)
    occ[r, c] = True
    lab_grid, n = ndimage.label(occ, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return empty
    lab = lab_grid[r, c] - 1
    count = np.bincount(lab, minlength=n)
    good = count >= cfg.min_points
    keep = good[lab]
    obj, lab = obj[keep], lab[keep]
    ids = np.flatnonzero(good)
    remap = np.full(n, -1, np.int64)
    remap[ids] = np.arange(len(ids))
    lab, k = remap[lab], len(ids)
    if k == 0:
        return empty
    boxes = _complete_single_faces(_fit_boxes(obj, lab, k, cfg.heading_steps), cfg)
    ok = ((boxes[:, 3] >= cfg.min_length_m) & (boxes[:, 3] <= cfg.max_length_m) &
          (boxes[:, 4] <= cfg.max_width_m))
    n_pts = np.bincount(lab, minlength=k)
    scores = np.minimum(1.0, n_pts / 60.0).astype(np.float32)
    return ClassicalResult(boxes[ok], scores[ok], plane)


def _fit_boxes(pts: np.ndarray, lab: np.ndarray, k: int, steps: int) -> np.ndarray:
    """Least-area oriented rectangles of k clusters over `steps` headings in [0, pi/2)."""
    theta = np.arange(steps) * (0.5 * np.pi / steps)
    ct, st = np.cos(theta)[:, None], np.sin(theta)[:, None]
    x, y = pts[None, :, 0].astype(np.float64), pts[None, :, 1].astype(np.float64)
    u, v = ct * x + st * y, -st * x + ct * y  # (steps, N) coordinates along and across each heading
    flat = (np.arange(steps)[:, None] * k + lab[None]).ravel()
    lo_u = np.full(steps * k, np.inf); hi_u = np.full(steps * k, -np.inf)
    lo_v = np.full(steps * k, np.inf); hi_v = np.full(steps * k, -np.inf)
    np.minimum.at(lo_u, flat, u.ravel()); np.maximum.at(hi_u, flat, u.ravel())
    np.minimum.at(lo_v, flat, v.ravel()); np.maximum.at(hi_v, flat, v.ravel())
    ext_u, ext_v = (hi_u - lo_u).reshape(steps, k), (hi_v - lo_v).reshape(steps, k)
    best = np.argmin(ext_u * ext_v, axis=0)
    cols = np.arange(k)
    eu, ev = ext_u[best, cols], ext_v[best, cols]
    mu = 0.5 * (lo_u.reshape(steps, k)[best, cols] + hi_u.reshape(steps, k)[best, cols])
    mv = 0.5 * (lo_v.reshape(steps, k)[best, cols] + hi_v.reshape(steps, k)[best, cols])
    th = theta[best]
    # The longer side is the length; the heading follows it.
    swap = ev > eu
    yaw = np.where(swap, th + 0.5 * np.pi, th)
    yaw = (yaw + 0.5 * np.pi) % np.pi - 0.5 * np.pi
    cx, cy = np.cos(th) * mu - np.sin(th) * mv, np.sin(th) * mu + np.cos(th) * mv
    z_top = np.full(k, -np.inf)
    np.maximum.at(z_top, lab, pts[:, 2].astype(np.float64))
    height = np.maximum(z_top, 0.3)
    length, width = np.maximum(eu, ev), np.minimum(eu, ev)
    return np.stack([cx, cy, 0.5 * height, np.maximum(length, 0.2), np.maximum(width, 0.2), height, yaw],
                    axis=1).astype(np.float32)


def _complete_single_faces(boxes: np.ndarray, cfg: ClassicalConfig) -> np.ndarray:
    """Grow one-face clusters into nominal vehicles behind the face, as seen from the origin.

    A face about a car's width long is a front or rear (the car extends along the face normal by
    its length); a longer one is a side (it extends by its width)."""
    out = boxes.copy()
    thin = boxes[:, 4] < cfg.single_face_m
    if not thin.any():
        return out
    b = boxes[thin]
    normal_yaw = b[:, 6] + 0.5 * np.pi
    n = np.stack([np.cos(normal_yaw), np.sin(normal_yaw)], axis=1)
    away = np.sign(np.einsum("ij,ij->i", n, b[:, :2]))
    n *= np.where(away == 0, 1.0, away)[:, None]
    end_face = b[:, 3] < 0.5 * (cfg.nominal_length_m + cfg.nominal_width_m)
    depth = np.where(end_face, cfg.nominal_length_m, cfg.nominal_width_m)
    shift = 0.5 * (depth - b[:, 4])
    sub = out[thin]
    sub[:, :2] = b[:, :2] + shift[:, None] * n
    sub[:, 3] = np.where(end_face, cfg.nominal_length_m, b[:, 3])
    sub[:, 4] = np.where(end_face, b[:, 3], cfg.nominal_width_m)
    sub[:, 6] = np.where(end_face, (normal_yaw + 0.5 * np.pi) % np.pi - 0.5 * np.pi, b[:, 6])
    out[thin] = sub
    return out
