"""Perception benchmarks: CPU, 1 intra-op thread, the shipped models.

lidar_detector: the whole stage step (cleaning, BEV encoding, inference, decoding) on a 64-beam
scan of a busy road rendered by the sim lidar; camera_detector: the whole camera step on a rendered
frame; bev_encoding: encoding alone on 120k points.
"""
from __future__ import annotations

import numpy as np

from core.messages import CameraImage, LidarScan
from perception.bev import BevGridConfig, encode_bev
from perception.camera_detector import CameraDetectorConfig, camera_detect_step, load_camera_model
from perception.health import DetectorHealth
from perception.lidar_detector import LidarDetectorConfig, lidar_detect_step, load_lidar_model
from perception.onnx_model import SessionOptions
from runtime.dataset import DatasetSpec, camera_frames, camera_geometry, lidar_frames
from runtime.train_cli import DEFAULT_MODEL
from sim.sensors.config import CameraConfig

CPU_1_THREAD = SessionOptions(provider="cpu", intra_op_threads=1)


def make_lidar_detector():
    cfg = LidarDetectorConfig(model_path=str(DEFAULT_MODEL["lidar"]))
    model = load_lidar_model(cfg, CPU_1_THREAD)
    points, intensity = lidar_frames(DatasetSpec(seeds=(3,), frames_per_seed=1), cfg.grid, keep_raw=True).raw[0]
    scan = LidarScan(0, "lidar", points, intensity, np.zeros(len(points), np.int32))
    state = DetectorHealth()

    def run():
        return lidar_detect_step(state, scan, 0, cfg, model)
    run.extra = {"points": int(len(points)), "provider": model.provider}
    return run


def make_camera_detector():
    cam = CameraConfig()
    cfg = CameraDetectorConfig(model_path=str(DEFAULT_MODEL["camera"]))
    model = load_camera_model(cfg, cam.width_px, CPU_1_THREAD)
    image = camera_frames(DatasetSpec(seeds=(3,), frames_per_seed=1), cfg.input, cam, keep_raw=True).raw[0]
    msg, geom, state = CameraImage(0, "camera", image), camera_geometry(cam), DetectorHealth()

    def run():
        return camera_detect_step(state, msg, 0, cfg, model, geom)
    run.extra = {"provider": model.provider}
    return run


def make_bev_encoding():
    rng = np.random.default_rng(0)
    grid = BevGridConfig()
    points = rng.uniform([-60, -30, -0.5], [60, 30, 3.0], (120_000, 3)).astype(np.float32)
    intensity = rng.random(120_000).astype(np.float32)

    def run():
        return encode_bev(points, intensity, grid)
    run.bytes_per_call = points.nbytes + intensity.nbytes
    return run


BENCHMARKS = {"lidar_detector": make_lidar_detector, "camera_detector": make_camera_detector,
              "bev_encoding": make_bev_encoding}
