"""Point cloud -> bird's-eye-view grid, and the input hygiene that precedes it.

The grid is the lidar network's input: three channels per cell (max height above ground, log
density, mean intensity), rows along x (forward), columns along y (left), both increasing with
the index. Encoding is one pass of integer binning plus bincount / maximum.at, no Python loops.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.config import rng

BEV_CHANNELS = ("max_height", "log_density", "mean_intensity")


@dataclass(frozen=True, slots=True)
class BevGridConfig:
    x_min_m: float = field(default=-52.0, metadata=rng(-200.0, 0.0))
    x_max_m: float = field(default=52.0, metadata=rng(0.0, 200.0))
    y_min_m: float = field(default=-26.0, metadata=rng(-200.0, 0.0))
    y_max_m: float = field(default=26.0, metadata=rng(0.0, 200.0))
    cell_m: float = field(default=0.5, metadata=rng(0.05, 5.0))
    z_min_m: float = field(default=-0.5, metadata=rng(-10.0, 10.0))  # vehicle frame, ground at 0
    z_max_m: float = field(default=3.5, metadata=rng(-10.0, 20.0))
    density_norm: float = field(default=64.0, metadata=rng(1.0, 1e6))  # log1p(n)/log1p(norm) -> ~[0, 1]

    @property
    def rows(self) -> int:
        return int(round((self.x_max_m - self.x_min_m) / self.cell_m))

    @property
    def cols(self) -> int:
        return int(round((self.y_max_m - self.y_min_m) / self.cell_m))


@dataclass(frozen=True, slots=True)
class CleanCloud:
    points: np.ndarray  # (M, 3) float32, all finite
    intensity: np.ndarray  # (M,) float32, finite, clipped to [0, 1]
    removed: int  # points dropped for a non-finite coordinate or intensity


def sanitize_cloud(points: np.ndarray, intensity: np.ndarray) -> CleanCloud:
    """Drop points with NaN/inf anywhere (counted), so open3d and the network only see finite data."""
    pts = np.asarray(points, dtype=np.float32)
    inten = np.asarray(intensity, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
    if inten.shape != (pts.shape[0],):
        raise ValueError(f"intensity must have shape ({pts.shape[0]},), got {inten.shape}")
    ok = np.isfinite(pts).all(axis=1) & np.isfinite(inten)
    removed = int(pts.shape[0] - np.count_nonzero(ok))
    if removed:
        pts, inten = pts[ok], inten[ok]
    return CleanCloud(pts, np.clip(inten, 0.0, 1.0), removed)


def encode_bev(points: np.ndarray, intensity: np.ndarray, grid: BevGridConfig) -> np.ndarray:
    """(N, 3) finite points + (N,) intensity -> (3, rows, cols) float32 grid, channels BEV_CHANNELS.

    Height is normalised to [0, 1] over [z_min, z_max] and empty cells hold 0, so "no return" and
    "return at z_min" look alike to the network; density disambiguates them.
    """
    rows, cols = grid.rows, grid.cols
    n_cells = rows * cols
    if points.shape[0] == 0:
        return np.zeros((3, rows, cols), dtype=np.float32)
    inv = np.float32(1.0 / grid.cell_m)
    r = np.floor((points[:, 0] - np.float32(grid.x_min_m)) * inv).astype(np.int32)
    c = np.floor((points[:, 1] - np.float32(grid.y_min_m)) * inv).astype(np.int32)
    z = points[:, 2]
    keep = (r >= 0) & (r < rows) & (c >= 0) & (c < cols) & (z >= grid.z_min_m) & (z <= grid.z_max_m)
    # Out-of-grid points go to one spare cell that is dropped at the end: cheaper than compressing
    # four arrays with a boolean mask.
    flat = np.where(keep, r * cols + c, n_cells)
    z_norm = (z - np.float32(grid.z_min_m)) * np.float32(1.0 / (grid.z_max_m - grid.z_min_m))
    count = np.bincount(flat, minlength=n_cells + 1)
    # Heights are >= 0 after normalisation, so a zero-initialised max is the empty-cell value.
    height = np.zeros(n_cells + 1, dtype=np.float32)
    np.maximum.at(height, flat, z_norm)
    inten_sum = np.bincount(flat, weights=intensity, minlength=n_cells + 1)
    out = np.empty((3, n_cells), dtype=np.float32)
    out[0] = height[:n_cells]
    out[1] = np.log1p(count[:n_cells]) * np.float32(1.0 / np.log1p(grid.density_norm))
    out[2] = inten_sum[:n_cells] / np.maximum(count[:n_cells], 1)
    return out.reshape(3, rows, cols)
