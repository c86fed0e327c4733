"""Labelled frames rendered from seeded sim scenarios, for training and evaluating the detectors.

runtime/ is the one layer that may see both sim/ (ground truth, sensor models) and perception/
(input encodings). Each seed picks a built-in scenario and a traffic density, drives the ego down
its lane with a simple lane-keeping and gap-keeping law, and samples a frame every
``sample_period_s``. The same seed always yields the same frames.

Labels carry ``ignore`` flags rather than being dropped: a target too hidden to be fairly required
(few lidar points, low camera visibility, too small) is neither a miss nor, when detected, a false
positive.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from core.messages import LABEL_VEHICLE
from perception.bev import BevGridConfig, encode_bev, sanitize_cloud
from perception.camera_input import CameraGeometry, CameraInputConfig, preprocess_image
from sim.scenario import load_scenario
from sim.sensors.camera import CameraModel
from sim.sensors.config import CameraConfig, LidarConfig
from sim.sensors.frames import to_vehicle_frame
from sim.sensors.lidar import LidarModel
from sim.world import NS_PER_S, World

SCENARIOS = ("free_road", "curve", "cut_in", "lead_brake", "stopped_vehicle")
DT_NS = 50_000_000
MIN_LIDAR_POINTS = 5  # fewer returns than this: an ignore label, not a required detection
MIN_CAMERA_VISIBILITY = 0.4


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    seeds: tuple[int, ...]
    frames_per_seed: int = 12
    sample_period_s: float = 0.6
    warmup_s: float = 0.5


@dataclass(frozen=True, slots=True)
class LabelledFrames:
    """F frames, struct of arrays; labels padded to K per frame (``count`` says how many are real)."""

    inputs: np.ndarray  # (F, C, H, W) float16 network input
    boxes: np.ndarray  # (F, K, 7) float32 lidar boxes [m, rad] or (F, K, 4) camera boxes [px, full image]
    labels: np.ndarray  # (F, K) int16
    ignore: np.ndarray  # (F, K) bool
    count: np.ndarray  # (F,) int32
    seeds: np.ndarray  # (F,) int64 the seed each frame came from
    raw: tuple  # per frame: (points, intensity) for lidar or the BGR image for camera, for evaluation


def camera_geometry(cfg: CameraConfig) -> CameraGeometry:
    return CameraGeometry(cfg.width_px, cfg.height_px, cfg.hfov_deg, (cfg.x_m, cfg.y_m, cfg.z_m),
                          (cfg.roll_rad, cfg.pitch_rad, cfg.yaw_rad))


def _world_for_seed(seed: int) -> World:
    """A built-in scenario with the density and ego lane varied by the seed."""
    rng = np.random.default_rng([seed, 7])
    scen = load_scenario(SCENARIOS[seed % len(SCENARIOS)])
    density = float(rng.uniform(6.0, 30.0))
    lane = int(rng.integers(0, scen.road.num_lanes))
    traffic = replace(scen.traffic, vehicles_per_km_per_lane=density, clear_ahead_m=float(rng.uniform(15.0, 40.0)),
                      clear_behind_m=15.0)
    scen = replace(scen, traffic=traffic, ego=replace(scen.ego, lane=lane))
    return World(scen, seed)


def _drive(world: World) -> tuple[float, float]:
    """Lane keeping (pure pursuit on the ego's lane centre) and a crude gap keeper."""
    ego = world.ego_truth()
    road = world.road
    s, d = road.to_frenet(np.asarray(ego.center_xy_m)[None])
    lane = road.lane_of(d[0])
    look_m = max(8.0, 1.0 * ego.speed_mps)
    target, _ = road.to_cartesian(s[0] + look_m, road.lane_center_d(lane))
    pose = ego.pose
    dx, dy = target[0] - pose[0], target[1] - pose[1]
    y_local = -np.sin(pose[2]) * dx + np.cos(pose[2]) * dy
    dist2 = dx * dx + dy * dy
    steer = float(np.arctan(2.0 * world.vehicle.wheelbase_m * y_local / max(dist2, 1.0)))
    local = to_vehicle_frame(ego, world.actors_truth())
    ahead = (local.centers_m[:, 0] > 0) & (np.abs(local.centers_m[:, 1]) < 2.0)
    gap = float(local.centers_m[ahead, 0].min()) - 5.0 if ahead.any() else np.inf
    accel = float(np.clip(0.3 * (gap - 2.0 * ego.speed_mps - 6.0), -6.0, 1.0))
    if ego.speed_mps < 0.5 and accel < 0:
        accel = 0.0
    return accel, steer


def iterate_frames(spec: DatasetSpec):
    """Yield (seed, ego, local actors, scan rng) at each sample time of each seed."""
    for seed in spec.seeds:
        world = _world_for_seed(int(seed))
        sensor_rng = np.random.default_rng([int(seed), 11])
        next_ns = int(spec.warmup_s * NS_PER_S)
        taken = 0
        while taken < spec.frames_per_seed and world.t_ns < world.end_ns:
            if world.t_ns >= next_ns:
                ego = world.ego_truth()
                yield int(seed), world.t_ns, ego, to_vehicle_frame(ego, world.actors_truth()), sensor_rng, world
                taken += 1
                next_ns += int(spec.sample_period_s * NS_PER_S)
            world.step(*_drive(world), DT_NS)


def _pad(rows: list[np.ndarray], width: int, dtype) -> np.ndarray:
    k = max([len(r) for r in rows] + [1])
    out = np.zeros((len(rows), k, width) if width else (len(rows), k), dtype=dtype)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def lidar_frames(spec: DatasetSpec, grid: BevGridConfig = BevGridConfig(),
                 lidar_cfg: LidarConfig = LidarConfig(), keep_raw: bool = False) -> LabelledFrames:
    model = LidarModel(lidar_cfg)
    bevs, boxes, labels, ignore, seeds, raw = [], [], [], [], [], []
    for seed, t_ns, ego, local, rng, _ in iterate_frames(spec):
        scan, truth = model.scan(t_ns, ego, local, rng)
        cloud = sanitize_cloud(scan.points, scan.intensity)
        bevs.append(encode_bev(cloud.points, cloud.intensity, grid).astype(np.float16))
        pts_per_actor = _count_points(truth.point_ids, truth.ids)
        boxes.append(truth.boxes)
        labels.append(truth.labels)
        ignore.append(pts_per_actor < MIN_LIDAR_POINTS)
        seeds.append(seed)
        if keep_raw:
            raw.append((cloud.points, cloud.intensity))
    return LabelledFrames(np.stack(bevs), _pad(boxes, 7, np.float32), _pad(labels, 0, np.int16),
                          _pad(ignore, 0, bool), np.array([len(b) for b in boxes], np.int32),
                          np.array(seeds, np.int64), tuple(raw))


def _count_points(point_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if len(ids) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(ids)
    pos = np.searchsorted(ids[order], point_ids)
    pos = np.clip(pos, 0, len(ids) - 1)
    hit = ids[order][pos] == point_ids
    counts = np.bincount(order[pos[hit]], minlength=len(ids))
    return counts


def camera_frames(spec: DatasetSpec, input_cfg: CameraInputConfig = CameraInputConfig(),
                  camera_cfg: CameraConfig = CameraConfig(), min_height_px: float = 20.0,
                  keep_raw: bool = False) -> LabelledFrames:
    images, boxes, labels, ignore, seeds, raw = [], [], [], [], [], []
    models: dict[int, CameraModel] = {}
    for seed, t_ns, ego, local, rng, world in iterate_frames(spec):
        model = models.get(seed)
        if model is None:
            models.clear()  # one world per seed: the previous road's model is done
            model = models[seed] = CameraModel(camera_cfg, world.road, noise_seed=seed)
        img, truth = model.render(t_ns, ego, local, rng)
        images.append(preprocess_image(img.image, input_cfg).astype(np.float16))
        tall = (truth.boxes_px[:, 3] - truth.boxes_px[:, 1]) >= min_height_px
        boxes.append(truth.boxes_px)
        labels.append(truth.labels)
        ignore.append(~tall | (truth.visibility < MIN_CAMERA_VISIBILITY) | (truth.labels != LABEL_VEHICLE))
        seeds.append(seed)
        if keep_raw:
            raw.append(img.image)
    return LabelledFrames(np.stack(images), _pad(boxes, 4, np.float32), _pad(labels, 0, np.int16),
                          _pad(ignore, 0, bool), np.array([len(b) for b in boxes], np.int32),
                          np.array(seeds, np.int64), tuple(raw))
