"""Tracks kept in the odometry frame, handed on in the map frame.

The tracker places detections with the ego's odometry pose (fusion/ego_ekf.py), which moves
smoothly, so a GNSS correction of the map pose does not shift the tracks or give them a velocity.
The fused picture is published in the map frame, where the planner has the road: each track goes
through the same map <- odometry transform as the ego itself at the output time. The relative
geometry the sensors measured (object minus ego) is therefore kept exactly; the uncertainty of the
ego's map pose joins each track's covariance through the Jacobian of that placement, as it would
for a detection placed in the map directly.
"""
from __future__ import annotations

import math

import numpy as np

from core.geometry import wrap_angle
from core.messages import EgoState, Tracks
from fusion.frames import to_map


def tracks_to_map(tracks: Tracks, ego_odom: EgoState, ego_map: EgoState) -> Tracks:
    """``tracks`` in the odometry frame -> the map frame; ``ego_odom`` and ``ego_map`` are the same
    ego at ``tracks.t_ns`` in the two frames (pose covariance taken from ``ego_map``)."""
    if ego_odom.t_ns != ego_map.t_ns or ego_odom.t_ns != tracks.t_ns:
        raise ValueError(f"tracks_to_map: tracks at {tracks.t_ns} ns, odometry ego at {ego_odom.t_ns} ns, "
                         f"map ego at {ego_map.t_ns} ns: all three must be at the same time")
    n = len(tracks)
    if n == 0:
        return tracks
    ox, oy, oyaw = (float(v) for v in ego_odom.pose)
    c, s = math.cos(oyaw), math.sin(oyaw)
    # Each track in the ego's vehicle frame (the sensors' view), then placed with the map pose.
    to_vehicle = np.array([[c, -s], [s, c]])  # row vectors times this: rotation by -oyaw
    rel = tracks.states[:, :2] - (ox, oy)
    meas = to_map(np.asarray(ego_map.pose, dtype=np.float64), np.asarray(ego_map.covariance)[:3, :3],
                  rel @ to_vehicle, tracks.states[:, 2:] @ to_vehicle, np.ones(n, bool),
                  tracks.yaws - oyaw, 0.0, 0.0)
    # The track's own covariance turns with the frame: B P B^T, B = diag(R, R), R by the yaw offset.
    dyaw = float(ego_map.pose[2]) - oyaw
    cd, sd = math.cos(dyaw), math.sin(dyaw)
    b = np.zeros((4, 4))
    b[:2, :2] = b[2:, 2:] = ((cd, -sd), (sd, cd))
    cov = b @ tracks.covariances @ b.T + meas.r
    return Tracks(tracks.t_ns, tracks.ids, meas.z, cov, wrap_angle(meas.yaw),
                  tracks.sizes, tracks.labels, tracks.existence)
