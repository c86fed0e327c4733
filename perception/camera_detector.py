"""Camera detection stage: image -> anchor-free network -> 2D boxes with ground-plane range.

Same shape as the lidar stage: a pure step handed the session, an optional injected timer for
overrun accounting, health counted per frame. There is no classical camera fallback: a failed frame
yields no detections and an unhealthy flag for the safety layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from core.config import rng
from core.messages import CameraImage, Detections2D, Detections3D
from perception.camera_input import CameraGeometry, CameraInputConfig, boxes_from_input, preprocess_image
from perception.contract import ModelContract, TensorSpec
from perception.heads import CAMERA_REG_CHANNELS, NUM_CLASSES, OUTPUT_STRIDE, DecodeConfig, decode_camera
from perception.health import (REASON_EXCEPTION, REASON_NO_MODEL, REASON_NONFINITE, REASON_OK,
                               REASON_OVERRUN, DetectorHealth)
from perception.onnx_model import MODELS_DIR, OnnxModel, SessionOptions

SOURCE = "camera"


@dataclass(frozen=True, slots=True)
class CameraDetectorConfig:
    model_path: str = str(MODELS_DIR / "camera_detector.onnx")
    input: CameraInputConfig = field(default_factory=CameraInputConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    budget_ms: float = field(default=40.0, metadata=rng(0.1, 10_000.0))
    bottom_pixel_sigma: float = field(default=1.5, metadata=rng(0.0, 50.0))  # full-image px, for range sigma
    max_range_m: float = field(default=150.0, metadata=rng(1.0, 1000.0))


def camera_contract(cfg: CameraDetectorConfig, image_width_px: int) -> ModelContract:
    h, w = cfg.input.input_hw(image_width_px)
    oh, ow = h // OUTPUT_STRIDE, w // OUTPUT_STRIDE
    return ModelContract(
        inputs=(TensorSpec("input", (1, 3, h, w)),),
        outputs=(TensorSpec("heatmap", (1, NUM_CLASSES, oh, ow)), TensorSpec("regression", (1, CAMERA_REG_CHANNELS, oh, ow))))


def load_camera_model(cfg: CameraDetectorConfig, image_width_px: int,
                      options: SessionOptions = SessionOptions()) -> OnnxModel:
    return OnnxModel(cfg.model_path, camera_contract(cfg, image_width_px), options)


def empty_2d(t_ns: int) -> Detections2D:
    z = np.zeros(0, np.float32)
    return Detections2D(t_ns, SOURCE, np.zeros((0, 4), np.float32), np.zeros(0, np.int16), z, z, z)


def _pixels(image: CameraImage) -> np.ndarray:
    if image.jpeg:
        img = cv2.imdecode(np.frombuffer(image.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("camera JPEG payload could not be decoded")
        return img
    return image.image


def camera_detect_step(state: DetectorHealth, image: CameraImage, t_ns: int, cfg: CameraDetectorConfig,
                       model: OnnxModel | None, geometry: CameraGeometry,
                       timer_ns: Callable[[], int] | None = None) -> tuple[DetectorHealth, Detections2D]:
    if model is None:
        return state.after_frame(REASON_NO_MODEL), empty_2d(t_ns)
    reason, error = REASON_OK, ""
    try:
        x = preprocess_image(_pixels(image), cfg.input)[None]
        t0 = timer_ns() if timer_ns else 0
        heat, reg = model.run({"input": x})
        elapsed_ns = (timer_ns() - t0) if timer_ns else 0
        if not (np.isfinite(heat).all() and np.isfinite(reg).all()):
            reason = REASON_NONFINITE
        else:
            boxes_in, labels, scores = decode_camera(heat[0], reg[0], cfg.decode)
            boxes = boxes_from_input(boxes_in, cfg.input)
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, geometry.width_px)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, geometry.height_px)
            range_m, sigma_m = geometry.range_from_boxes(boxes, cfg.bottom_pixel_sigma, cfg.max_range_m)
            if elapsed_ns > cfg.budget_ms * 1e6:
                reason = REASON_OVERRUN
    except Exception as exc:  # noqa: BLE001 - any inference failure is a health event, not a crash
        reason, error = REASON_EXCEPTION, f"{type(exc).__name__}: {exc}"
    if reason in (REASON_OK, REASON_OVERRUN):
        return state.after_frame(reason), Detections2D(t_ns, SOURCE, boxes, labels, scores, range_m, sigma_m)
    return state.after_frame(reason, error=error), empty_2d(t_ns)


def camera_to_3d(det: Detections2D, geometry: CameraGeometry, default_size_m: tuple[float, float, float] = (4.6, 1.9, 1.5)
                 ) -> Detections3D:
    """Camera detections as vehicle-frame objects for the tracker: position = the ground point under
    the box's bottom centre pushed back by half a default length along the line of sight (the
    bottom edge is the object's near face); size = ``default_size_m``; yaw 0 (unobserved); no
    velocity. Boxes whose bottom is above the horizon are dropped."""
    u = 0.5 * (det.boxes_px[:, 0] + det.boxes_px[:, 2]).astype(np.float64)
    xy, ok = geometry.ground_points(u, det.boxes_px[:, 3].astype(np.float64))
    xy = xy[ok]
    origin = np.asarray(geometry.mount_xyz_m[:2], dtype=np.float64)
    los = xy - origin
    los /= np.maximum(np.linalg.norm(los, axis=1, keepdims=True), 1e-9)
    length, width, height = default_size_m
    centre = xy + 0.5 * length * los
    n = int(ok.sum())
    boxes = np.column_stack([centre, np.full(n, 0.5 * height), np.full(n, length), np.full(n, width),
                             np.full(n, height), np.zeros(n)]).astype(np.float32)
    return Detections3D(det.t_ns, SOURCE, boxes, np.zeros((n, 2), np.float32), np.zeros(n, bool),
                        det.labels[ok], det.scores[ok])
