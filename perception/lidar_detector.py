"""Lidar detection stage: clean cloud -> BEV -> network -> boxes, with health and classical fallback.

``lidar_detect_step`` is a pure step apart from the session it is handed: no clock reads (an
optional injected timer measures inference for overrun accounting), no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.config import rng
from core.messages import LABEL_VEHICLE, Detections3D, LidarScan
from perception.bev import BevGridConfig, encode_bev, sanitize_cloud
from perception.box_refine import BoxRefineConfig, refine_boxes
from perception.classical_lidar import ClassicalConfig, detect_classical
from perception.contract import ModelContract, TensorSpec
from perception.heads import LIDAR_REG_CHANNELS, NUM_CLASSES, DecodeConfig, decode_lidar, lidar_out_hw
from perception.health import (REASON_EXCEPTION, REASON_NO_MODEL, REASON_NONFINITE, REASON_OK,
                               REASON_OVERRUN, DetectorHealth)
from perception.onnx_model import MODELS_DIR, OnnxModel, SessionOptions

SOURCE = "lidar"
SOURCE_CLASSICAL = "lidar_classical"


@dataclass(frozen=True, slots=True)
class LidarDetectorConfig:
    model_path: str = str(MODELS_DIR / "lidar_detector.onnx")
    grid: BevGridConfig = field(default_factory=BevGridConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    refine: BoxRefineConfig = field(default_factory=BoxRefineConfig)  # network centres onto visible faces
    budget_ms: float = field(default=40.0, metadata=rng(0.1, 10_000.0))  # inference overrun threshold
    fallback_classical: bool = True  # answer with the classical path when the network cannot


def lidar_contract(grid: BevGridConfig) -> ModelContract:
    h, w = lidar_out_hw(grid)
    return ModelContract(
        inputs=(TensorSpec("input", (1, 3, grid.rows, grid.cols)),),
        outputs=(TensorSpec("heatmap", (1, NUM_CLASSES, h, w)), TensorSpec("regression", (1, LIDAR_REG_CHANNELS, h, w))))


def load_lidar_model(cfg: LidarDetectorConfig, options: SessionOptions = SessionOptions()) -> OnnxModel:
    return OnnxModel(cfg.model_path, lidar_contract(cfg.grid), options)


def _classical(t_ns: int, points: np.ndarray, cfg: LidarDetectorConfig) -> Detections3D:
    res = detect_classical(points, cfg.classical)
    n = len(res.scores)
    return Detections3D(t_ns, SOURCE_CLASSICAL, res.boxes, np.zeros((n, 2), np.float32), np.zeros(n, bool),
                        np.full(n, LABEL_VEHICLE, np.int16), res.scores)


def lidar_detect_step(state: DetectorHealth, scan: LidarScan, t_ns: int, cfg: LidarDetectorConfig,
                      model: OnnxModel | None, timer_ns: Callable[[], int] | None = None
                      ) -> tuple[DetectorHealth, Detections3D]:
    """One scan -> (updated health, detections). ``model`` None runs the classical path (counted)."""
    cloud = sanitize_cloud(scan.points, scan.intensity)
    if cloud.points.shape[0] == 0:
        return state.after_frame(REASON_OK, removed_points=cloud.removed), Detections3D.empty(t_ns, SOURCE)
    if model is None:
        out = _classical(t_ns, cloud.points, cfg) if cfg.fallback_classical else Detections3D.empty(t_ns, SOURCE)
        return state.after_frame(REASON_NO_MODEL, removed_points=cloud.removed,
                                 fallback=cfg.fallback_classical), out
    reason, error = REASON_OK, ""
    try:
        bev = encode_bev(cloud.points, cloud.intensity, cfg.grid)[None]
        t0 = timer_ns() if timer_ns else 0
        heat, reg = model.run({"input": bev})
        elapsed_ns = (timer_ns() - t0) if timer_ns else 0
        if not (np.isfinite(heat).all() and np.isfinite(reg).all()):
            reason = REASON_NONFINITE
        else:
            boxes, labels, scores = decode_lidar(heat[0], reg[0], cfg.grid, cfg.decode)
            boxes, _ = refine_boxes(boxes, cloud.points, cfg.refine)
            if elapsed_ns > cfg.budget_ms * 1e6:
                reason = REASON_OVERRUN  # late but valid: the detections still go out, flagged
    except Exception as exc:  # noqa: BLE001 - any inference failure is a health event, not a crash
        reason, error = REASON_EXCEPTION, f"{type(exc).__name__}: {exc}"
    if reason in (REASON_OK, REASON_OVERRUN):
        n = len(scores)
        det = Detections3D(t_ns, SOURCE, boxes, np.zeros((n, 2), np.float32), np.zeros(n, bool), labels, scores)
        return state.after_frame(reason, removed_points=cloud.removed), det
    fallback = cfg.fallback_classical
    det = _classical(t_ns, cloud.points, cfg) if fallback else Detections3D.empty(t_ns, SOURCE)
    return state.after_frame(reason, error=error, removed_points=cloud.removed, fallback=fallback), det
