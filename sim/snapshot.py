"""A look at what the sensors see, for a person: camera.png, camera_boxes.png and bev.png.

The world is stepped to t with the ego holding its lane at its initial speed (a simple lane-keeping
law: feed-forward curvature plus feedback on lateral and heading error), then the camera, lidar and
radar capture once. bev.png is a bird's-eye view in the vehicle frame: lanes, lidar points (ground
grey, road users coloured), radar detections (circle plus a Doppler tick), ground-truth footprints.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.clock import s_to_ns
from core.geometry import box_corners_2d, map_to_se2, wrap_angle
from sim.scenario import ScenarioConfig
from sim.sensors.config import SensorRigConfig
from sim.sensors.frames import to_vehicle_frame
from sim.sensors.rig import SensorRig
from sim.world import World

STEP_NS = 10_000_000
_BEV_PX, _BEV_M_PER_PX = 900, 0.15
_BEV_ORIGIN_PX = (450, 700)  # pixel of the vehicle origin: more view ahead than behind
_LABEL_BGR = ((60, 170, 255), (255, 120, 230))  # vehicle, pedestrian


def lane_keep_command(world: World, lane: int, speed_mps: float) -> tuple[float, float]:
    ego, road = world.ego_truth(), world.road
    s, d = road.to_frenet(np.asarray(ego.pose[:2])[None])
    _, heading, kappa = road.interpolate(s)
    d_err = float(d[0] - road.lane_center_d(lane))
    h_err = float(wrap_angle(ego.pose[2] - heading[0]))
    wheelbase = world.vehicle.wheelbase_m
    steer = float(np.arctan(wheelbase * kappa[0])) - 0.08 * d_err - 0.6 * h_err
    return 0.8 * (speed_mps - ego.speed_mps), steer


def write_snapshot(scenario_cfg: ScenarioConfig, seed: int, t_s: float, out_dir,
                   rig_cfg: SensorRigConfig = SensorRigConfig()) -> dict[str, Path]:
    if not np.isfinite(t_s) or t_s < 0:
        raise ValueError(f"snapshot time must be a finite, non-negative number of seconds, got {t_s}")
    world = World(scenario_cfg, seed)
    t_end = s_to_ns(t_s)
    while world.t_ns < t_end:
        accel, steer = lane_keep_command(world, scenario_cfg.ego.lane, scenario_cfg.ego.speed_mps)
        world.step(accel, steer, min(STEP_NS, t_end - world.t_ns))
    ego, actors = world.ego_truth(), world.actors_truth()
    rig = SensorRig(rig_cfg, world.road, seed)
    got = {s: rig.capture(s, world.t_ns, ego, actors)[0] for s in ("camera", "lidar", "radar")}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cam = got["camera"]
    image = cam.message.image if cam.message.image.size else cv2.imdecode(
        np.frombuffer(cam.message.jpeg, np.uint8), cv2.IMREAD_COLOR)
    paths = {"camera": out / "camera.png", "camera_boxes": out / "camera_boxes.png", "bev": out / "bev.png"}
    cv2.imwrite(str(paths["camera"]), image)
    cv2.imwrite(str(paths["camera_boxes"]), _draw_camera_boxes(image, cam.truth))
    cv2.imwrite(str(paths["bev"]), _bev(world, ego, actors, got["lidar"], got["radar"], rig_cfg))
    return paths


def _draw_camera_boxes(image: np.ndarray, truth) -> np.ndarray:
    img = image.copy()
    for box, ident, label, vis in zip(truth.boxes_px, truth.ids, truth.labels, truth.visibility):
        u0, v0, u1, v1 = (int(round(v)) for v in box)
        color = _LABEL_BGR[int(label)] if 0 <= label < len(_LABEL_BGR) else (255, 255, 255)
        cv2.rectangle(img, (u0, v0), (u1, v1), color, 1, cv2.LINE_AA)
        cv2.putText(img, f"{ident} {vis:.0%}", (u0, max(v0 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1,
                    cv2.LINE_AA)
    return img


def _to_px(xy: np.ndarray) -> np.ndarray:
    """Vehicle-frame (x forward, y left) -> BEV pixels, forward up."""
    u = _BEV_ORIGIN_PX[0] - xy[..., 1] / _BEV_M_PER_PX
    v = _BEV_ORIGIN_PX[1] - xy[..., 0] / _BEV_M_PER_PX
    return np.stack([u, v], axis=-1)


def _bev(world: World, ego, actors, lidar, radar, rig_cfg: SensorRigConfig) -> np.ndarray:
    img = np.full((_BEV_PX, _BEV_PX, 3), 28, np.uint8)
    road = world.road
    pose = np.asarray(ego.pose, dtype=np.float64)
    s0 = float(road.to_frenet(pose[:2][None])[0][0])
    s = np.clip(s0 + np.arange(-60.0, 140.0, 1.0), 0.0, road.length_m)
    half = road.half_width_m
    lines = [(-half, (200, 200, 200)), (half, (200, 200, 200))]
    lines += [(float(d), (110, 110, 110)) for d in road.lane_center_d(np.arange(road.num_lanes - 1)) + 0.5 * road.lane_width_m]
    for d, color in lines:
        xy, _ = road.to_cartesian(s, np.full(len(s), d))
        pts = _to_px(map_to_se2(pose, xy)).astype(np.int32)
        cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
    # Lidar: ground dim by intensity, road users bright in their label colour.
    pts = lidar.message.points
    px = _to_px(pts[:, :2]).astype(np.int32)
    ok = (px[:, 0] >= 0) & (px[:, 0] < _BEV_PX) & (px[:, 1] >= 0) & (px[:, 1] < _BEV_PX)
    ids = lidar.truth.point_ids
    ground = ok & (ids < 0)
    grey = (60 + 500 * lidar.message.intensity[ground]).clip(0, 255).astype(np.uint8)
    img[px[ground, 1], px[ground, 0]] = grey[:, None]
    hit = ok & (ids >= 0)
    for du, dv in ((0, 0), (1, 0), (0, 1), (1, 1)):  # 2x2 dots: returns from road users stand out
        img[np.clip(px[hit, 1] + dv, 0, _BEV_PX - 1), np.clip(px[hit, 0] + du, 0, _BEV_PX - 1)] = (80, 255, 120)
    # Ground-truth footprints and ids.
    local = to_vehicle_frame(ego, actors)
    corners = box_corners_2d(local.centers_m[:, :2], local.sizes_m[:, 0], local.sizes_m[:, 1], local.yaw_rad)
    for c, ident, label in zip(corners, local.ids, local.labels):
        color = _LABEL_BGR[int(label)] if 0 <= label < len(_LABEL_BGR) else (255, 255, 255)
        poly = _to_px(c).astype(np.int32)
        cv2.polylines(img, [poly], True, color, 1, cv2.LINE_AA)
        cv2.putText(img, str(int(ident)), tuple(int(v) for v in poly.max(axis=0) + (2, 0)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1, cv2.LINE_AA)
    ego_c = box_corners_2d(map_to_se2(pose, np.asarray(ego.center_xy_m)[None]), [ego.length_m], [ego.width_m], [0.0])
    cv2.fillPoly(img, [_to_px(ego_c[0]).astype(np.int32)], (255, 255, 255))
    # Radar: a circle per detection, and a tick along the line of sight scaled by the range rate
    # (red closing, blue opening) so the Doppler shows.
    r, az, rr = radar.message.range_m, radar.message.azimuth_rad, radar.message.range_rate_mps
    det = np.stack([r * np.cos(az), r * np.sin(az)], axis=-1)
    origin = np.array([rig_cfg.radar.x_m, rig_cfg.radar.y_m])
    los = det - origin
    los /= np.maximum(np.linalg.norm(los, axis=1, keepdims=True), 1e-9)
    for p, u, v in zip(det, los, rr):
        color = (60, 60, 255) if v < 0 else (255, 160, 60)
        a = tuple(int(x) for x in _to_px(p))
        b = tuple(int(x) for x in _to_px(p + 0.25 * v * u))
        cv2.circle(img, a, 3, color, 1, cv2.LINE_AA)
        cv2.line(img, a, b, color, 1, cv2.LINE_AA)
    cv2.putText(img, f"t = {ego.t_ns / 1e9:.2f} s   lidar {len(pts)} pts   radar {len(r)} det   10 m grid",
                (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    for k in range(-4, 14):  # 10 m range marks along the x axis
        v = int(_BEV_ORIGIN_PX[1] - 10 * k / _BEV_M_PER_PX)
        cv2.line(img, (0, v), (8, v), (150, 150, 150), 1)
    return img
