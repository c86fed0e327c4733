"""Shape checks for incoming messages: a payload of the wrong shape is rejected before any stage
sees it (counted as malformed by the health monitor), so no stage has to defend against it."""
from __future__ import annotations

import numpy as np

from core.messages import (CameraImage, Detections2D, Detections3D, EgoState, GnssFix, ImuSample, LidarScan,
                           RadarScan, WheelSpeed)


def _rows(n: int, *arrays_and_widths) -> bool:
    for a, width in arrays_and_widths:
        if not isinstance(a, np.ndarray) or a.shape[0] != n:
            return False
        if width is None and a.ndim != 1:
            return False
        if width is not None and (a.ndim != 2 or a.shape[1] != width):
            return False
    return True


def well_formed(msg) -> bool:
    """True when every array of the message has the shape its type documents."""
    if isinstance(msg, LidarScan):
        n = msg.points.shape[0] if msg.points.ndim == 2 else -1
        return _rows(n, (msg.points, 3), (msg.intensity, None), (msg.time_offset_ns, None))
    if isinstance(msg, RadarScan):
        n = msg.range_m.shape[0] if msg.range_m.ndim == 1 else -1
        return _rows(n, (msg.range_m, None), (msg.azimuth_rad, None), (msg.range_rate_mps, None),
                     (msg.rcs_dbsm, None))
    if isinstance(msg, CameraImage):
        image = msg.image
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
                and image.dtype == np.uint8):
            return False
        # A JPEG payload stands in for the pixels, which are then the empty (0, 0, 3) image: a
        # message carrying both is ambiguous (the log encoder refuses it too).
        return not msg.jpeg or image.size == 0
    if isinstance(msg, ImuSample):
        return isinstance(msg.accel_mps2, np.ndarray) and msg.accel_mps2.shape == (3,)
    if isinstance(msg, GnssFix):
        return isinstance(msg.position_m, np.ndarray) and msg.position_m.shape == (2,)
    if isinstance(msg, EgoState):
        return msg.pose.shape == (3,) and msg.covariance.shape == (5, 5)
    if isinstance(msg, Detections3D):
        n = msg.boxes.shape[0] if msg.boxes.ndim == 2 else -1
        return _rows(n, (msg.boxes, 7), (msg.velocities_mps, 2), (msg.velocity_valid, None),
                     (msg.labels, None), (msg.scores, None))
    if isinstance(msg, Detections2D):
        n = msg.boxes_px.shape[0] if msg.boxes_px.ndim == 2 else -1
        return _rows(n, (msg.boxes_px, 4), (msg.labels, None), (msg.scores, None), (msg.range_m, None),
                     (msg.range_sigma_m, None))
    if isinstance(msg, WheelSpeed):
        # A scalar field can still arrive as an array (a corrupted transfer): fusion would raise on it.
        return np.ndim(msg.speed_mps) == 0
    return True
