"""Topic naming convention for rtdrive logs.

One topic carries one message type. Per-sensor and per-source streams get their own topic so a
Foxglove panel can pick one stream:

    /sensors/camera/<sensor>      CameraImage     (foxglove.RawImage or foxglove.CompressedImage)
    /sensors/lidar/<sensor>       LidarScan       (foxglove.PointCloud)
    /sensors/radar/<sensor>       RadarScan
    /sensors/imu                  ImuSample
    /sensors/wheel_speed          WheelSpeed
    /sensors/gnss                 GnssFix
    /perception/<source>          Detections3D or Detections2D (e.g. /perception/lidar)
    /localization/ego             EgoState
    /fusion/tracks                Tracks
    /planning/plan                Plan
    /control/command              ControlCommand
    /safety/status                SafetyStatus
    /timing/<stage>               StageTiming
    /sync/decisions               the synchroniser's decision records
    /truth/ego, /truth/actors     EgoTruth, ActorsTruth (simulation only)
    /viz/<topic>[/tf|/pose]       display-only Foxglove companions (SceneUpdate, FrameTransform,
                                  PoseInFrame); readers skip them
"""
from __future__ import annotations

from core.messages import (CameraImage, ControlCommand, Detections2D, Detections3D, EgoState,
                           GnssFix, ImuSample, LidarScan, Plan, RadarScan, SafetyStatus, StageTiming,
                           Tracks, WheelSpeed)
from sim.truth import ActorsTruth, EgoTruth

VIZ_PREFIX = "/viz"
SYNC_DECISIONS = "/sync/decisions"

_FIXED = {
    ImuSample: "/sensors/imu",
    WheelSpeed: "/sensors/wheel_speed",
    GnssFix: "/sensors/gnss",
    EgoState: "/localization/ego",
    Tracks: "/fusion/tracks",
    Plan: "/planning/plan",
    ControlCommand: "/control/command",
    SafetyStatus: "/safety/status",
    EgoTruth: "/truth/ego",
    ActorsTruth: "/truth/actors",
}


def default_topic(msg: object) -> str:
    """The conventional topic for ``msg``; ValueError for a type without one."""
    tp = type(msg)
    if tp in _FIXED:
        return _FIXED[tp]
    if tp is CameraImage:
        return f"/sensors/camera/{msg.sensor}"
    if tp is LidarScan:
        return f"/sensors/lidar/{msg.sensor}"
    if tp is RadarScan:
        return f"/sensors/radar/{msg.sensor}"
    if tp in (Detections3D, Detections2D):
        return f"/perception/{msg.source}"
    if tp is StageTiming:
        return f"/timing/{msg.stage}"
    raise ValueError(f"no conventional topic for {tp.__name__}; pass a topic explicitly")


def viz_topic(topic: str, suffix: str = "") -> str:
    return f"{VIZ_PREFIX}{topic}{suffix}"


def is_input_topic(topic: str) -> bool:
    """Sensor inputs: what a replay feeds into the stack (everything else is a stage output)."""
    return topic.startswith("/sensors/")
