"""Pinhole camera rendered with OpenCV: sky, ground, road and lane markings, shaded actor boxes.

Occlusion uses the painter's algorithm (far to near): enough for upright boxes on a flat road.
Ground-truth 2D boxes (the silhouette's bounds, clipped to the image) come with a visibility
fraction measured from an id buffer drawn in the same order: visible pixels / pixels of the
silhouette inside the image, i.e. occlusion only (truncation shows in the clipped box).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.messages import LABEL_VEHICLE, CameraImage
from core.road import Road
from sim.sensors.config import CameraConfig
from sim.sensors.frames import BOX_FACES, LocalActors, box_corners_3d, face_normals
from sim.truth import EgoTruth

NEAR_M = 0.3
_SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices
_SCALE = float(1 << _SHIFT)
_TILE_SIGMA = 32.0  # grey-level sigma of the stored noise tile, scaled per frame
_TILE_PAD = 97
_LIGHT = np.array([0.35, 0.25, 0.9]) / np.linalg.norm([0.35, 0.25, 0.9])
_ASPHALT_BGR = (88, 84, 82)
_MARKING_BGR = (225, 228, 230)
_GLASS_BGR = (60, 50, 45)
_MARKING_HALF_WIDTH_M = 0.075
_DASH_M, _DASH_PERIOD_M = 3.0, 12.0
# Road samples ahead of the camera: denser near, where the perspective magnifies the road.
_S_AHEAD = np.concatenate([np.arange(0.5, 30.0, 1.0), np.arange(30.0, 200.0, 4.0)])


@dataclass(frozen=True, slots=True)
class CameraTruth:
    t_ns: int
    ids: np.ndarray  # (K,) int64 actors with any visible pixel
    labels: np.ndarray  # (K,) int16
    boxes_px: np.ndarray  # (K, 4) float32 u_min, v_min, u_max, v_max, clipped to the image
    visibility: np.ndarray  # (K,) float32 in (0, 1]
    depth_m: np.ndarray  # (K,) float32 distance from the camera to the box centre


class CameraModel:
    """Static parts (intrinsics, extrinsics, background, noise tile) built once; render per frame."""

    def __init__(self, cfg: CameraConfig, road: Road, noise_seed: int) -> None:
        self.cfg, self.road = cfg, road
        w, h = cfg.width_px, cfg.height_px
        self.fx = 0.5 * w / np.tan(np.radians(0.5 * cfg.hfov_deg))
        self.cx, self.cy = 0.5 * w, 0.5 * h
        mount = cfg.mount()
        optical_from_body = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
        self.rot_cv = optical_from_body @ mount.rotation.T  # vehicle -> optical (x right, y down, z fwd)
        self.origin_m = mount.translation.copy()
        self.background = self._background()
        self.frame_rect = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        tile = np.random.default_rng(noise_seed).normal(128.0, _TILE_SIGMA, (h + _TILE_PAD, w + _TILE_PAD, 3))
        self.noise_tile = np.clip(tile, 0, 255).astype(np.uint8)

    # -- geometry ---------------------------------------------------------------------------------
    def to_optical(self, points_vehicle: np.ndarray) -> np.ndarray:
        return (points_vehicle - self.origin_m) @ self.rot_cv.T

    def project(self, points_optical: np.ndarray) -> np.ndarray:
        """(..., 3) optical-frame points with z > 0 -> (..., 2) pixels."""
        z = points_optical[..., 2]
        return np.stack([self.fx * points_optical[..., 0] / z + self.cx,
                         self.fx * points_optical[..., 1] / z + self.cy], axis=-1)

    def _background(self) -> np.ndarray:
        w, h = self.cfg.width_px, self.cfg.height_px
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        rays_opt = np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fx, np.ones_like(u)], axis=-1)
        rays = rays_opt @ self.rot_cv  # optical -> vehicle direction
        elev = rays[..., 2] / np.linalg.norm(rays, axis=-1)
        sky = np.array([235.0, 200.0, 160.0])[None, None] * (1.0 - 0.45 * np.clip(elev, 0, 1)[..., None])
        # Ground darkens with distance into a haze-free grass colour; the horizon blends into haze.
        ground_range = np.where(elev < 0, self.origin_m[2] / np.maximum(-elev, 1e-3), 1e3)
        haze = np.clip(ground_range / 300.0, 0.0, 1.0)[..., None]
        ground = np.array([70.0, 120.0, 95.0])[None, None] * (1 - haze) + np.array([190.0, 185.0, 175.0]) * haze
        return np.where(elev[..., None] >= 0, sky, ground).astype(np.uint8)

    # -- drawing ----------------------------------------------------------------------------------
    def _fixed(self, px: np.ndarray) -> np.ndarray:
        lim = 1e5  # keep fixed-point vertices inside int32 for points just past the near plane
        return np.ascontiguousarray(np.round(np.clip(px, -lim, lim) * _SCALE), dtype=np.int32)

    def _strip_polygon(self, ego: EgoTruth, s: np.ndarray, d_lo: float, d_hi: float) -> np.ndarray | None:
        """A band d_lo..d_hi along the road for arc lengths s, as one fixed-point pixel polygon."""
        ss = np.concatenate([s, s[::-1]])
        dd = np.concatenate([np.full(len(s), d_lo), np.full(len(s), d_hi)])
        xy, _ = self.road.to_cartesian(ss, dd)
        return self._ground_polygon(ego, xy)

    def _ground_polygon(self, ego: EgoTruth, xy_map: np.ndarray) -> np.ndarray | None:
        pose = np.asarray(ego.pose, dtype=np.float64)
        c, sn = np.cos(pose[2]), np.sin(pose[2])
        dx, dy = xy_map[..., 0] - pose[0], xy_map[..., 1] - pose[1]
        pts = np.stack([c * dx + sn * dy, -sn * dx + c * dy, np.zeros_like(dx)], axis=-1)
        opt = self.to_optical(pts)
        keep = opt[..., 2] > NEAR_M
        if keep.sum() < 3:
            return None
        return self._fixed(self.project(opt[keep]))

    def _draw_road(self, img: np.ndarray, ego: EgoTruth) -> None:
        road = self.road
        s_cam, _ = road.to_frenet(np.asarray(ego.pose[:2], dtype=np.float64)[None])
        s = float(s_cam[0]) + _S_AHEAD
        s = s[(s >= 0.0) & (s <= road.length_m)]
        if len(s) < 2:
            return
        half = road.half_width_m
        surface = self._strip_polygon(ego, s, -half, half)
        if surface is not None:
            cv2.fillPoly(img, [surface], _ASPHALT_BGR, cv2.LINE_8, _SHIFT)
        polys = []
        for d in (-half + 0.2, half - 0.2):  # solid edge lines
            poly = self._strip_polygon(ego, s, d - _MARKING_HALF_WIDTH_M, d + _MARKING_HALF_WIDTH_M)
            if poly is not None:
                polys.append(poly)
        separators = road.lane_center_d(np.arange(road.num_lanes - 1)) + 0.5 * road.lane_width_m
        if len(separators):
            starts = np.arange(np.floor(s[0] / _DASH_PERIOD_M), np.ceil(s[-1] / _DASH_PERIOD_M)) * _DASH_PERIOD_M
            starts = starts[starts >= s[0] - _DASH_M]
            s_a, s_b = np.clip(starts, s[0], s[-1]), np.clip(starts + _DASH_M, s[0], s[-1])
            # (dashes, separators, 4 corners): one batched Frenet -> map conversion for all dashes.
            sq = np.stack([s_a, s_b, s_b, s_a], axis=-1)[:, None, :].repeat(len(separators), axis=1)
            off = np.array([-1.0, -1.0, 1.0, 1.0]) * _MARKING_HALF_WIDTH_M
            dq = separators[None, :, None] + off[None, None, :]
            xy, _ = road.to_cartesian(sq, np.broadcast_to(dq, sq.shape))
            pose = np.asarray(ego.pose, dtype=np.float64)
            c, sn = np.cos(pose[2]), np.sin(pose[2])
            dx, dy = xy[..., 0] - pose[0], xy[..., 1] - pose[1]
            pts = np.stack([c * dx + sn * dy, -sn * dx + c * dy, np.zeros_like(dx)], axis=-1).reshape(-1, 4, 3)
            opt = self.to_optical(pts)
            ok = (opt[..., 2] > NEAR_M).all(axis=1)
            quads = self._fixed(self.project(opt[ok]))
            polys.extend(list(quads))
        if polys:
            cv2.fillPoly(img, polys, _MARKING_BGR, cv2.LINE_8, _SHIFT)

    def render(self, t_ns: int, ego: EgoTruth, local: LocalActors, rng: np.random.Generator,
               noise_scale: float = 1.0) -> tuple[CameraImage, CameraTruth]:
        cfg = self.cfg
        img = self.background.copy()
        self._draw_road(img, ego)
        # Visibility is a ratio of areas, so half resolution (a quarter of the pixels) is plenty.
        ids_buf = np.zeros((img.shape[0] // 2, img.shape[1] // 2), dtype=np.uint8 if len(local) < 255 else np.int32)
        areas = np.zeros(len(local))  # silhouette area inside the image, at id-buffer scale
        bounds = np.full((len(local), 4), np.nan)  # silhouette pixel bounds u0, v0, u1, v1
        n = len(local)
        if n:
            corners = self.to_optical(box_corners_3d(local.centers_m, local.sizes_m, local.yaw_rad))  # (N, 8, 3)
            center_opt = corners.mean(axis=1)
            dist = np.linalg.norm(center_opt, axis=1)
            in_view = (corners[..., 2] > NEAR_M).any(axis=1) & (dist < cfg.max_range_m)
            normals_v = face_normals(local.yaw_rad)  # (N, 6, 3) vehicle frame
            face_pts = corners[:, BOX_FACES]  # (N, 6, 4, 3)
            facing = np.einsum("nfk,nfk->nf", normals_v @ self.rot_cv.T, -face_pts.mean(axis=2)) > 0.0
            shade = 0.5 + 0.5 * np.clip(normals_v @ _LIGHT, 0.0, 1.0)  # (N, 6)
            colors = local.colors_bgr[:, None, :].astype(np.float64) * shade[..., None]
            edges = (colors * 0.55).tolist()
            colors = colors.tolist()
            windows = _window_quads(face_pts)  # (N, 4, 4, 3) side faces only
            # Batched projection; faces crossing the near plane are clipped one by one below.
            front = corners[..., 2] > NEAR_M
            safe = np.where(front[..., None], corners, 1.0)
            face_fixed = self._fixed(self.project(safe[:, BOX_FACES]))  # (N, 6, 4, 2)
            win_fixed = self._fixed(self.project(np.where(windows[..., 2:3] > NEAR_M, windows, 1.0)))
            win_ok = (windows[..., 2] > NEAR_M).all(axis=-1)
            corner_px = self.project(safe).astype(np.float32)  # (N, 8, 2)
            face_front = front[:, BOX_FACES].all(axis=-1)  # (N, 6)
            is_vehicle = local.labels == LABEL_VEHICLE
            for i in np.argsort(-dist, kind="stable"):
                if not in_view[i]:
                    continue
                clipped = []
                for f in np.nonzero(facing[i])[0]:
                    if face_front[i, f]:
                        fixed = face_fixed[i, f]
                    else:
                        poly = _clip_near(face_pts[i, f])
                        if poly is None:
                            continue
                        clipped.append(poly)
                        fixed = self._fixed(self.project(poly))
                    cv2.fillConvexPoly(img, fixed, colors[i][f], cv2.LINE_8, _SHIFT)
                    cv2.polylines(img, [fixed], True, edges[i][f], 1, cv2.LINE_8, _SHIFT)
                    if f < 4 and is_vehicle[i] and win_ok[i, f]:
                        cv2.fillConvexPoly(img, win_fixed[i, f], _GLASS_BGR, cv2.LINE_8, _SHIFT)
                # The silhouette of a convex box is the convex hull of its (near-clipped) corners.
                if front[i].all():
                    sil = corner_px[i]
                else:
                    sil = np.concatenate([corner_px[i][front[i]]] +
                                         [self.project(p).astype(np.float32) for p in clipped])
                if len(sil) >= 3:
                    hull = cv2.convexHull(sil)
                    bounds[i, :2], bounds[i, 2:] = hull.min(axis=(0, 1)), hull.max(axis=(0, 1))
                    inside, _ = cv2.intersectConvexConvex(hull, self.frame_rect)
                    areas[i] = 0.25 * inside
                    cv2.fillConvexPoly(ids_buf, self._fixed(0.5 * hull.reshape(-1, 2)), int(i) + 1, cv2.LINE_8, _SHIFT)
        image = self._expose(img, rng, noise_scale)
        truth = self._truth(t_ns, local, ids_buf, areas, bounds, dist if n else None)
        t_out = int(t_ns)
        if cfg.jpeg:
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            return CameraImage(t_out, "camera", np.zeros((0, 0, 3), np.uint8), buf.tobytes()), truth
        return CameraImage(t_out, "camera", image), truth

    def _expose(self, img: np.ndarray, rng: np.random.Generator, noise_scale: float) -> np.ndarray:
        gain = float(np.clip(1.0 + self.cfg.exposure_sigma * rng.standard_normal(), 0.2, 3.0))
        du, dv = (int(x) for x in rng.integers(0, _TILE_PAD, size=2))
        h, w = img.shape[:2]
        tile = self.noise_tile[dv:dv + h, du:du + w]
        k = self.cfg.noise_sigma * float(noise_scale) / _TILE_SIGMA
        # out = gain * img + k * (tile - 128), saturated to uint8, in one pass.
        return cv2.addWeighted(img, gain, tile, k, -128.0 * k)

    def _truth(self, t_ns, local, ids_buf, areas, bounds, dist) -> CameraTruth:
        n = len(local)
        if ids_buf.dtype == np.uint8:  # calcHist is several times faster than bincount here
            counts = cv2.calcHist([ids_buf], [0], None, [256], [0, 256]).reshape(-1)[1:n + 1].astype(np.float64)
        else:
            counts = np.bincount(ids_buf.reshape(-1), minlength=n + 1)[1:n + 1].astype(np.float64)
        seen = np.nonzero(counts > 0)[0]
        if len(seen) == 0:
            return CameraTruth(int(t_ns), np.zeros(0, np.int64), np.zeros(0, np.int16),
                               np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))
        w, h = self.cfg.width_px, self.cfg.height_px
        b = bounds[seen]
        boxes = np.column_stack([np.clip(b[:, 0], 0, w), np.clip(b[:, 1], 0, h),
                                 np.clip(b[:, 2], 0, w), np.clip(b[:, 3], 0, h)]).astype(np.float32)
        vis = np.clip(counts[seen] / np.maximum(areas[seen], 1.0), 0.0, 1.0).astype(np.float32)
        return CameraTruth(int(t_ns), local.ids[seen], local.labels[seen], boxes, vis, dist[seen].astype(np.float32))


def _window_quads(face_pts: np.ndarray) -> np.ndarray:
    """Glass band on the four side faces: 55..88 % of the height, inset 12 % along the face."""
    side = face_pts[:, :4]  # corners ordered bottom a, bottom b, top b, top a
    a0, b0, b1, a1 = side[:, :, 0], side[:, :, 1], side[:, :, 2], side[:, :, 3]
    def at(p_bot, p_top, frac):
        return p_bot + (p_top - p_bot) * frac
    lo_a, lo_b = at(a0, a1, 0.55), at(b0, b1, 0.55)
    hi_a, hi_b = at(a0, a1, 0.88), at(b0, b1, 0.88)
    inset = 0.12
    q = [lo_a + (lo_b - lo_a) * inset, lo_b + (lo_a - lo_b) * inset,
         hi_b + (hi_a - hi_b) * inset, hi_a + (hi_b - hi_a) * inset]
    return np.stack(q, axis=2)


def _clip_near(poly: np.ndarray) -> np.ndarray | None:
    """Clip a convex 3D polygon (K, 3) in the optical frame to z >= NEAR_M (Sutherland-Hodgman)."""
    inside = poly[:, 2] >= NEAR_M
    if inside.all():
        return poly
    if not inside.any():
        return None
    out = []
    k = len(poly)
    for j in range(k):
        p, q = poly[j], poly[(j + 1) % k]
        if inside[j]:
            out.append(p)
        if inside[j] != inside[(j + 1) % k]:
            t = (NEAR_M - p[2]) / (q[2] - p[2])
            out.append(p + t * (q - p))
    return np.array(out) if len(out) >= 3 else None
