"""Build the perception stages of a run: which detector serves each sensor, on which provider.

Modes: ``onnx`` (the full stack: lidar and camera networks, radar clustering), ``classical`` (the
classical lidar path and radar clustering, no network), ``oracle`` (no perception stage: objects
come from the oracle sensor). Models are loaded once here (session creation, contract check,
warm-up); the steps themselves do no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

from core.messages import LidarScan
from fusion.tracker_state import TrackerConfig
from perception.bev import BevGridConfig
from perception.camera_detector import CameraDetectorConfig, camera_detect_step, load_camera_model
from perception.camera_input import CameraGeometry
from perception.health import DetectorHealth
from perception.lidar_detector import LidarDetectorConfig, lidar_detect_step, load_lidar_model
from perception.onnx_model import SessionOptions
from perception.radar_clustering import RadarClusterConfig, radar_cluster_step
from runtime.perception_modes import PERCEPTION_MODES
from runtime.stages import PerceptionStep
from sim.sensors.config import SensorRigConfig


@dataclass(frozen=True, slots=True)
class PerceptionSetup:
    steps: tuple[PerceptionStep, ...]
    providers: dict[str, dict] = field(default_factory=dict)  # model name -> provider report


def camera_geometry(rig: SensorRigConfig) -> CameraGeometry:
    c = rig.camera
    return CameraGeometry(c.width_px, c.height_px, c.hfov_deg, (c.x_m, c.y_m, c.z_m),
                          (c.roll_rad, c.pitch_rad, c.yaw_rad))


def tracker_for_rig(tracker: TrackerConfig, rig: SensorRigConfig, lidar_grid: BevGridConfig) -> TrackerConfig:
    """``tracker`` with each object sensor's coverage taken from the rig it runs on: mounts,
    fields of view and ranges, and the lidar detector's grid (both lidar paths search the same
    +-x, +-y box). Noise models are kept, and so is the camera's reliable-detection range where it
    is shorter than the camera's render range."""
    sources = dict(tracker.sources)

    def with_sensor(source: str, sensor: str, **cover) -> None:
        if source in sources and sensor in rig.enabled:
            sc = rig.sensor(sensor)
            sources[source] = replace(sources[source], mount_x_m=sc.x_m, mount_y_m=sc.y_m,
                                      mount_yaw_rad=sc.yaw_rad, **cover)

    lidar_box = dict(fov_half_rad=3.1416, max_range_m=rig.lidar.max_range_m,
                     x_min_m=lidar_grid.x_min_m, x_max_m=lidar_grid.x_max_m,
                     y_min_m=lidar_grid.y_min_m, y_max_m=lidar_grid.y_max_m)
    with_sensor("lidar", "lidar", **lidar_box)
    with_sensor("lidar_classical", "lidar", **lidar_box)
    with_sensor("radar", "radar", fov_half_rad=min(3.1416, math.radians(0.5 * rig.radar.hfov_deg)),
                max_range_m=rig.radar.max_range_m)
    camera_range_m = tracker.source("camera").max_range_m
    with_sensor("camera", "camera", fov_half_rad=math.radians(0.5 * rig.camera.hfov_deg),
                max_range_m=min(camera_range_m, rig.camera.max_range_m))
    return replace(tracker, sources=sources)


def build_perception(mode: str, rig: SensorRigConfig, options: SessionOptions,
                     detector_timer: Callable[[], int] | None,
                     lidar_cfg: LidarDetectorConfig = LidarDetectorConfig(),
                     camera_cfg: CameraDetectorConfig = CameraDetectorConfig()) -> PerceptionSetup:
    """``detector_timer`` measures inference for the detectors' overrun verdicts; None in ideal mode,
    where outputs must not depend on wall-clock time."""
    if mode not in PERCEPTION_MODES:
        raise ValueError(f"perception mode {mode!r}; choose one of {', '.join(PERCEPTION_MODES)}")
    if mode == "oracle":
        return PerceptionSetup(())
    steps: list[PerceptionStep] = []
    providers: dict[str, dict] = {}
    enabled = set(rig.enabled)
    if "lidar" in enabled:
        lidar_model = load_lidar_model(lidar_cfg, options) if mode == "onnx" else None
        if lidar_model is not None:
            providers["lidar_detector"] = lidar_model.report()

        def lidar_step(state: DetectorHealth, scan: LidarScan, t_ns: int, ego) -> tuple:
            return lidar_detect_step(state, scan, scan.t_ns, lidar_cfg, lidar_model, detector_timer)

        # In classical mode the network is absent by choice: its "no model" frames are healthy.
        healthy = (lambda s: s.healthy) if mode == "onnx" else (lambda s: s.last_reason in ("", "no_model"))
        steps.append(PerceptionStep("lidar", DetectorHealth, lidar_step, healthy))
    if "camera" in enabled and mode == "onnx":
        geometry = camera_geometry(rig)
        camera_model = load_camera_model(camera_cfg, geometry.width_px, options)
        providers["camera_detector"] = camera_model.report()

        def camera_step(state: DetectorHealth, image, t_ns: int, ego) -> tuple:
            return camera_detect_step(state, image, image.t_ns, camera_cfg, camera_model, geometry,
                                      detector_timer)

        steps.append(PerceptionStep("camera", DetectorHealth, camera_step, lambda s: s.healthy))
    if "radar" in enabled:
        radar_cfg = replace(RadarClusterConfig(), mount_x_m=rig.radar.x_m, mount_y_m=rig.radar.y_m)

        def radar_step(state: int, scan, t_ns: int, ego) -> tuple:
            # Ego motion compensates the Doppler of the returns; without an ego estimate yet, wait.
            if ego is None:
                return state, None
            out = radar_cluster_step(scan, ego.speed_mps, ego.yaw_rate_rps, scan.t_ns, radar_cfg)
            return state + out.removed_nonfinite, out.detections

        steps.append(PerceptionStep("radar", int, radar_step))
    return PerceptionSetup(tuple(steps), providers)
