"""Radar returns are about the vehicle origin; clusters must land where the returns are."""
import numpy as np

from core.messages import RadarScan
from perception.radar_clustering import RadarClusterConfig, radar_cluster_step


def test_cluster_centre_is_in_the_vehicle_frame_not_shifted_by_the_mount():
    # Three returns from a stationary car 30 m ahead, ego standing still.
    x = np.array([29.8, 30.0, 30.2]); y = np.array([-0.5, 0.0, 0.5])
    scan = RadarScan(0, "radar", np.hypot(x, y).astype(np.float32), np.arctan2(y, x).astype(np.float32),
                     np.zeros(3, np.float32), np.full(3, 10.0, np.float32))
    det = radar_cluster_step(scan, 0.0, 0.0, 0, RadarClusterConfig(mount_x_m=3.7)).detections
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0, :2], [30.0, 0.0], atol=1e-4)


def test_doppler_compensation_uses_the_line_of_sight_from_the_mount():
    # A stationary target seen from a radar mounted 3.7 m ahead of the origin, 10 m to the side:
    # moving at 20 m/s, the measured range rate is -20 * cos(bearing from the mount).
    tx, ty, mount = 13.7, 10.0, 3.7
    bearing_mount = np.arctan2(ty, tx - mount)
    rr = -20.0 * np.cos(bearing_mount)
    xs = np.array([tx - 0.2, tx, tx + 0.2]); ys = np.array([ty, ty + 0.2, ty - 0.2])
    scan = RadarScan(0, "radar", np.hypot(xs, ys).astype(np.float32), np.arctan2(ys, xs).astype(np.float32),
                     np.full(3, rr, np.float32), np.full(3, 10.0, np.float32))
    det = radar_cluster_step(scan, 20.0, 0.0, 0, RadarClusterConfig(mount_x_m=mount)).detections
    assert len(det) == 1
    assert np.abs(det.velocities_mps[0]).max() < 0.05  # ground-relative radial speed of a parked car
