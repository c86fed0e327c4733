"""Per-track filterpy reference for the batched tracker, and scenario helpers shared by the tests."""
from __future__ import annotations

import numpy as np
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter

from core.messages import Detections3D, EgoState


def filterpy_track(x0: np.ndarray, p0: np.ndarray) -> KalmanFilter:
    kf = KalmanFilter(dim_x=4, dim_z=2)
    kf.x = x0.astype(np.float64).copy()
    kf.P = p0.astype(np.float64).copy()
    kf.F = np.eye(4)
    return kf


def filterpy_predict(kf: KalmanFilter, dt_s: float, accel_psd: float) -> None:
    kf.F = np.array([[1, 0, dt_s, 0], [0, 1, 0, dt_s], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    kf.Q = Q_continuous_white_noise(2, dt_s, accel_psd, block_size=2, order_by_dim=False)
    kf.predict()


def filterpy_update(kf: KalmanFilter, z: np.ndarray, r: np.ndarray) -> None:
    dim = z.shape[0]
    kf.update(z, R=r, H=np.eye(4)[:dim])


def still_ego(t_ns: int, pose=(0.0, 0.0, 0.0), cov: float = 0.0) -> EgoState:
    return EgoState(t_ns, np.array(pose, dtype=np.float64), 0.0, 0.0, 0.0, np.eye(5) * cov)


def detections(t_ns: int, xy: np.ndarray, source: str = "lidar", vel: np.ndarray | None = None,
               vel_valid: np.ndarray | None = None, labels: np.ndarray | None = None,
               scores: np.ndarray | None = None) -> Detections3D:
    m = xy.shape[0]
    boxes = np.zeros((m, 7), np.float32)
    boxes[:, :2] = xy
    boxes[:, 3:6] = (4.5, 1.9, 1.6)
    return Detections3D(
        t_ns, source, boxes,
        np.zeros((m, 2), np.float32) if vel is None else vel.astype(np.float32),
        np.zeros(m, bool) if vel_valid is None else vel_valid,
        np.zeros(m, np.int16) if labels is None else labels.astype(np.int16),
        np.full(m, 0.9, np.float32) if scores is None else scores.astype(np.float32))
