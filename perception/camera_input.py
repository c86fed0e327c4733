"""Camera geometry (intrinsics/extrinsics, ground-plane range) and the network's image crop.

perception/ may not import the sim's sensor config, so the runtime builds ``CameraGeometry`` from
whatever camera it wires (width, height, horizontal FOV, mount pose); the model card records the
crop and scale the network was trained with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from core.config import rng
from core.geometry import rotation_rpy

# Optical frame (x right, y down, z forward) expressed in body axes (x forward, y left, z up).
_OPTICAL_FROM_BODY = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True, slots=True)
class CameraGeometry:
    width_px: int
    height_px: int
    hfov_deg: float
    mount_xyz_m: tuple[float, float, float]
    mount_rpy_rad: tuple[float, float, float]

    @property
    def focal_px(self) -> float:
        return 0.5 * self.width_px / float(np.tan(np.radians(0.5 * self.hfov_deg)))

    def ground_points(self, u_px: np.ndarray, v_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels -> (N, 2) vehicle-frame xy where their rays meet the ground z = 0, and a validity
        mask (False for rays at or above the horizon)."""
        f, cx, cy = self.focal_px, 0.5 * self.width_px, 0.5 * self.height_px
        rays_opt = np.stack([(u_px - cx) / f, (v_px - cy) / f, np.ones_like(u_px)], axis=-1)
        rot = rotation_rpy(*self.mount_rpy_rad)  # sensor -> vehicle
        rays = rays_opt @ _OPTICAL_FROM_BODY @ rot.T  # optical -> body -> vehicle
        origin = np.asarray(self.mount_xyz_m, dtype=np.float64)
        down = rays[:, 2] < -1e-6
        t = np.where(down, -origin[2] / np.where(down, rays[:, 2], -1.0), np.nan)
        xy = origin[None, :2] + t[:, None] * rays[:, :2]
        return xy, down

    def range_from_boxes(self, boxes_px: np.ndarray, pixel_sigma: float = 1.0,
                         max_range_m: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
        """Range [m] from the camera to the ground point under each box's bottom centre, and its
        1-sigma from a ``pixel_sigma`` error of the bottom row (range error grows with range^2)."""
        u = 0.5 * (boxes_px[:, 0] + boxes_px[:, 2]).astype(np.float64)
        v = boxes_px[:, 3].astype(np.float64)
        xy, ok = self.ground_points(u, v)
        xy_lo, ok_lo = self.ground_points(u, v - pixel_sigma)
        origin = np.asarray(self.mount_xyz_m[:2], dtype=np.float64)
        rng_m = np.hypot(xy[:, 0] - origin[0], xy[:, 1] - origin[1])
        rng_lo = np.hypot(xy_lo[:, 0] - origin[0], xy_lo[:, 1] - origin[1])
        rng_m = np.where(ok, np.minimum(rng_m, max_range_m), max_range_m)
        sigma = np.where(ok & ok_lo, np.abs(rng_lo - rng_m), max_range_m)
        return rng_m.astype(np.float32), np.maximum(sigma, 0.05).astype(np.float32)


@dataclass(frozen=True, slots=True)
class CameraInputConfig:
    """The band of the image the network sees: rows [crop_top_px, crop_top_px + crop_rows_px)
    of the full image, resized by ``scale``. Sky above the horizon holds no vehicle bottoms, and
    skipping it cuts the network's cost by a third."""

    crop_top_px: int = field(default=180, metadata=rng(0, 4096))
    crop_rows_px: int = field(default=360, metadata=rng(16, 4096))
    scale: float = field(default=0.4, metadata=rng(0.1, 1.0))

    def input_hw(self, width_px: int) -> tuple[int, int]:
        return int(round(self.crop_rows_px * self.scale)), int(round(width_px * self.scale))


def preprocess_image(image_bgr: np.ndarray, cfg: CameraInputConfig) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (3, h, w) float32 in [0, 1], RGB order, cropped and resized."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"camera image must have shape (H, W, 3), got {image_bgr.shape}")
    if cfg.crop_top_px + cfg.crop_rows_px > image_bgr.shape[0]:
        raise ValueError(f"crop rows {cfg.crop_top_px}..{cfg.crop_top_px + cfg.crop_rows_px} exceed the "
                         f"image height {image_bgr.shape[0]}")
    h, w = cfg.input_hw(image_bgr.shape[1])
    band = image_bgr[cfg.crop_top_px:cfg.crop_top_px + cfg.crop_rows_px]
    small = cv2.resize(band, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32) * np.float32(1.0 / 255.0)


def boxes_to_input(boxes_px: np.ndarray, cfg: CameraInputConfig) -> np.ndarray:
    """Full-image boxes (N, 4) -> network-input pixel boxes (clipped to the crop band)."""
    out = boxes_px.astype(np.float32).copy()
    out[:, [1, 3]] = np.clip(out[:, [1, 3]] - cfg.crop_top_px, 0, cfg.crop_rows_px)
    return out * np.float32(cfg.scale)


def boxes_from_input(boxes_in: np.ndarray, cfg: CameraInputConfig) -> np.ndarray:
    out = boxes_in.astype(np.float32) * np.float32(1.0 / cfg.scale)
    out[:, [1, 3]] += np.float32(cfg.crop_top_px)
    return out
