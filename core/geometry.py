"""Geometry: angles, SE(2)/SE(3) transforms, sensor extrinsics and oriented boxes.

All functions are vectorised over leading dimensions where that makes sense.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def wrap_angle(a):
    """Wrap radians to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def rot2(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s], [s, c]])


def se2_to_map(pose: np.ndarray, xy_local: np.ndarray) -> np.ndarray:
    """Points (N, 2) in a frame at ``pose`` = (x, y, yaw) -> map frame."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    x, y = xy_local[..., 0], xy_local[..., 1]
    return np.stack([pose[0] + c * x - s * y, pose[1] + s * x + c * y], axis=-1)


def map_to_se2(pose: np.ndarray, xy_map: np.ndarray) -> np.ndarray:
    """Points (N, 2) in the map frame -> the frame at ``pose`` = (x, y, yaw)."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    dx, dy = xy_map[..., 0] - pose[0], xy_map[..., 1] - pose[1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation R = Rz(yaw) Ry(pitch) Rx(roll) (REP 103 fixed-axis roll, pitch, yaw)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


@dataclass(frozen=True, slots=True)
class SE3:
    """A rigid transform p_parent = R p_child + t."""

    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    @staticmethod
    def identity() -> "SE3":
        return SE3(np.eye(3), np.zeros(3))

    @staticmethod
    def from_xyz_rpy(xyz, rpy) -> "SE3":
        return SE3(rotation_rpy(*rpy), np.asarray(xyz, dtype=np.float64))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) child frame -> parent frame."""
        return points @ self.rotation.T + self.translation

    def inverse(self) -> "SE3":
        r_t = self.rotation.T
        return SE3(r_t, -r_t @ self.translation)

    def compose(self, other: "SE3") -> "SE3":
        """self * other: apply other first, then self."""
        return SE3(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m


def box_corners_2d(centers: np.ndarray, lengths: np.ndarray, widths: np.ndarray,
                   yaws: np.ndarray) -> np.ndarray:
    """Footprint corners (N, 4, 2) of oriented boxes, counter-clockwise from front-left."""
    centers = np.atleast_2d(centers)
    half_l = 0.5 * np.asarray(lengths, dtype=np.float64).reshape(-1)
    half_w = 0.5 * np.asarray(widths, dtype=np.float64).reshape(-1)
    yaws = np.asarray(yaws, dtype=np.float64).reshape(-1)
    local = np.stack([np.stack([half_l, half_w], -1), np.stack([-half_l, half_w], -1),
                      np.stack([-half_l, -half_w], -1), np.stack([half_l, -half_w], -1)], axis=1)
    c, s = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    x = c * local[..., 0] - s * local[..., 1] + centers[:, 0:1]
    y = s * local[..., 0] + c * local[..., 1] + centers[:, 1:2]
    return np.stack([x, y], axis=-1)


def boxes_overlap(corners_a: np.ndarray, corners_b: np.ndarray) -> np.ndarray:
    """Separating-axis test for pairs of convex quadrilaterals, (N, 4, 2) x (N, 4, 2) -> (N,) bool.

    Two rectangles are disjoint iff some edge normal of either separates their projections.
    """
    def axes(c):  # (N, 2, 2): two edge directions suffice for a rectangle
        return np.stack([c[:, 1] - c[:, 0], c[:, 2] - c[:, 1]], axis=1)

    all_axes = np.concatenate([axes(corners_a), axes(corners_b)], axis=1)  # (N, 4, 2)
    proj_a = np.einsum("nkd,njd->nkj", all_axes, corners_a)  # (N, 4 axes, 4 corners)
    proj_b = np.einsum("nkd,njd->nkj", all_axes, corners_b)
    separated = (proj_a.max(-1) < proj_b.min(-1)) | (proj_b.max(-1) < proj_a.min(-1))
    return ~separated.any(axis=1)
