"""Ground truth seen from the ego: actor boxes and velocities in the vehicle frame, box meshes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.geometry import map_to_se2, wrap_angle
from sim.truth import ActorsTruth, EgoTruth

# Corner k of a box has signs (sx, sy, sz) of bit pattern below: bottom face 0..3 (CCW seen from
# above, starting front-left), top face 4..7 above them.
_CORNER_SIGNS = np.array([[1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, -1],
                          [1, 1, 1], [-1, 1, 1], [-1, -1, 1], [1, -1, 1]], dtype=np.float64)
# Faces as corner quads in boundary order, with their outward normal in
# the box frame: front, left, rear, right, top, bottom.
BOX_FACES = np.array([[0, 3, 7, 4], [1, 0, 4, 5], [2, 1, 5, 6], [3, 2, 6, 7], [4, 7, 6, 5], [0, 1, 2, 3]])
BOX_FACE_NORMALS = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
BOX_TRIANGLES = np.concatenate([BOX_FACES[:, [0, 1, 2]], BOX_FACES[:, [0, 2, 3]]]).astype(np.uint32)


@dataclass(frozen=True, slots=True)
class LocalActors:
    """Actors in the ego vehicle frame at one instant (struct of arrays, N actors)."""

    ids: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int16
    centers_m: np.ndarray  # (N, 3) box centres; z = half height (boxes stand on the ground)
    sizes_m: np.ndarray  # (N, 3) length, width, height
    yaw_rad: np.ndarray  # (N,) relative to the ego heading
    velocity_mps: np.ndarray  # (N, 2) ground velocity expressed in the vehicle frame
    colors_bgr: np.ndarray  # (N, 3) uint8

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def boxes7(self) -> np.ndarray:
        """(N, 7) float32 x, y, z, length, width, height, yaw: the Detections3D box layout."""
        return np.concatenate([self.centers_m, self.sizes_m, self.yaw_rad[:, None]], axis=1).astype(np.float32)


def to_vehicle_frame(ego: EgoTruth, actors: ActorsTruth) -> LocalActors:
    """Actors relative to the ego. A non-finite ego pose is an error (every sensor would be wrong);
    actors with non-finite or non-positive geometry are left out, so one bad actor cannot poison
    a whole scan."""
    pose = np.asarray(ego.pose, dtype=np.float64)
    if pose.shape != (3,) or not np.isfinite(pose).all() or not np.isfinite(ego.speed_mps):
        raise ValueError(f"ego truth must have a finite (3,) pose and speed, got pose {pose!r}, speed {ego.speed_mps}")
    geometry = np.column_stack([np.asarray(actors.xy_m, dtype=np.float64).reshape(-1, 2), actors.yaw_rad,
                                actors.speed_mps, actors.length_m, actors.width_m, actors.height_m])
    good = np.isfinite(geometry).all(axis=1) & (geometry[:, 4:] > 0).all(axis=1)
    if not good.all():
        actors = ActorsTruth(actors.t_ns, *(np.asarray(getattr(actors, f))[good] for f in (
            "ids", "xy_m", "yaw_rad", "speed_mps", "accel_mps2", "length_m", "width_m", "height_m",
            "labels", "colors_bgr")))
    xy = map_to_se2(pose, np.asarray(actors.xy_m, dtype=np.float64).reshape(-1, 2))
    height = np.asarray(actors.height_m, dtype=np.float64)
    centers = np.column_stack([xy, 0.5 * height])
    sizes = np.column_stack([actors.length_m, actors.width_m, height]).astype(np.float64)
    c, s = np.cos(pose[2]), np.sin(pose[2])
    v_map = actors.velocity_mps.reshape(-1, 2)
    v_local = np.column_stack([c * v_map[:, 0] + s * v_map[:, 1], -s * v_map[:, 0] + c * v_map[:, 1]])
    return LocalActors(np.asarray(actors.ids, dtype=np.int64), np.asarray(actors.labels, dtype=np.int16),
                       centers, sizes, wrap_angle(np.asarray(actors.yaw_rad, dtype=np.float64) - pose[2]),
                       v_local, np.asarray(actors.colors_bgr, dtype=np.uint8).reshape(-1, 3))


def box_corners_3d(centers_m: np.ndarray, sizes_m: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of upright boxes, ordered as _CORNER_SIGNS."""
    local = 0.5 * sizes_m[:, None, :] * _CORNER_SIGNS[None]
    c, s = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + centers_m[:, None, :]


def face_normals(yaw_rad: np.ndarray) -> np.ndarray:
    """(N, 6, 3) outward face normals of upright boxes, faces ordered as BOX_FACES."""
    c, s = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
    n = BOX_FACE_NORMALS[None]
    return np.stack([c * n[..., 0] - s * n[..., 1], s * n[..., 0] + c * n[..., 1],
                     np.broadcast_to(n[..., 2], (len(yaw_rad), 6))], axis=-1)
